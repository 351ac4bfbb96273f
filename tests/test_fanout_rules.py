"""The fan-out enqueue rules (CONTRACT_RUN §4) and the warm executor's script cache, in-process: no browser."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from quarry_core.cli.progress import ProgressPrinter
from quarry_core.protocol.frames import Event
from quarry_core.runtime.control import RunControl
from quarry_core.runtime.fanout import Crawl, CrawlProgress, FanoutSettings, dedup_key
from quarry_core.runtime.run import RunSettings
from quarry_executor.warm import ScriptCache


def _enqueue(target: str, params: dict[str, Any] | None = None, **extra: str) -> Event:
    payload: dict[str, Any] = {"target": target, "params": params or {}, **extra}
    return Event(event_id="e", run_id="r", seq=1, type="enqueue", ts="2026-01-01T00:00:00Z", payload=payload)


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    for name in ("root.py", "child.py"):
        (tmp_path / name).write_text("async def run(ctx):\n    pass\n")
    return tmp_path


def _crawl(scripts: Path, **fanout: Any) -> tuple[Crawl, RunSettings]:
    root = RunSettings(
        script=str(scripts / "root.py"),
        run_id="root-1",
        source="shop",
        category="listing",
        job={"page": 1},
        job_id="job-9",
    )
    settings = FanoutSettings(**{"depth": 2, "max_runs": 10, **fanout})
    crawl = Crawl(root, host=None, control=RunControl(), fanout=settings, cwd=str(scripts))  # type: ignore[arg-type]
    return crawl, crawl.root


def test_children_carry_lineage_and_overrides_else_the_spawners_partition(scripts: Path) -> None:
    crawl, root = _crawl(scripts)
    crawl.decide(root, _enqueue("child.py", {"id": 1}, category="detail"))
    crawl.decide(root, _enqueue("child.py", {"id": 2}, source="other"))
    first, second = crawl.queue
    assert first.script == os.path.realpath(scripts / "child.py") and first.job == {"id": 1}
    assert (first.job_id, first.spawned_by_run_id, first.depth, first.root_run_id) == ("job-9", "root-1", 1, "root-1")
    assert (first.attempt, first.parent_run_id) == (1, None) and first.run_id not in ("root-1", second.run_id)
    assert (first.source, first.category) == ("shop", "detail")
    assert (second.source, second.category) == ("other", "listing")
    # a grandchild takes its spawner's (the child's) partition values and the root's job id
    crawl.decide(first, _enqueue("child.py", {"id": 3}))
    grandchild = crawl.queue[-1]
    assert (grandchild.depth, grandchild.spawned_by_run_id, grandchild.category) == (2, first.run_id, "detail")
    assert grandchild.job_id == "job-9" and grandchild.root_run_id == "root-1"


def test_rules_apply_in_order_and_are_counted(scripts: Path) -> None:
    crawl, root = _crawl(scripts, depth=1, max_runs=2)
    crawl.decide(root, _enqueue("root.py", {"page": 1}))  # the root's own key is seeded
    crawl.decide(root, _enqueue("./child.py", {"a": 1, "b": 2}))
    crawl.decide(root, _enqueue("child.py", {"b": 2, "a": 1}))  # same path, same params in another order
    crawl.decide(root, _enqueue("missing.py"))
    crawl.decide(root, _enqueue("child.py", {"id": 2}, category="bad/../value" * 40))
    crawl.decide(root, _enqueue("child.py", {"id": 3}))
    crawl.decide(root, _enqueue("child.py", {"id": 4}))  # the cap: 2 children already scheduled
    child = crawl.queue[0]
    crawl.decide(child, _enqueue("child.py", {"id": 5}))  # depth 2 > 1
    fo = crawl.fan_out()
    assert len(crawl.queue) == 2
    assert (fo["enqueue_received"], fo["enqueue_deduped"], fo["enqueue_skipped"]) == (8, 2, 4)
    assert fo["enqueue_skipped_by_reason"] == {
        "depth_exceeded": 1,
        "target_not_found": 1,
        "invalid_partition": 1,
        "max_runs_reached": 1,
    }


def test_after_a_cancel_new_children_are_abandoned(scripts: Path) -> None:
    crawl, root = _crawl(scripts)
    crawl.control.canceled.set()
    crawl.decide(root, _enqueue("child.py", {"id": 1}))
    assert not crawl.queue and crawl.fan_out()["enqueue_abandoned"] == 1


def test_dedup_key_is_the_documented_hash() -> None:
    import hashlib

    expected = hashlib.sha256('/a/b.py\x00{"x":"é","y":[1,2]}'.encode()).hexdigest()
    assert dedup_key("/a/b.py", {"y": [1, 2], "x": "é"}) == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"depth": 0}, "depth >= 1"),
        ({"max_runs": 0}, "max_runs >= 1"),
        ({"parallel": 0}, "parallel must be >= 1"),
        ({"isolation": "none"}, "isolation must be one of context, page"),
    ],
)
def test_fanout_settings_reject_bad_values(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FanoutSettings(**{"depth": 1, "max_runs": 1, **bad})


def test_script_cache_loads_once_and_reloads_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("COUNT = 1\nasync def run(ctx):\n    pass\n")
    cache = ScriptCache()
    first = cache.load(str(path))
    assert cache.load(str(path)) is first and cache.loads == 1
    path.write_text("COUNT = 22\nasync def run(ctx):\n    pass\n")
    os.utime(path, ns=(1, 10**9 * 5))  # a different mtime even on coarse clocks
    second = cache.load(str(path))
    assert second is not first and second.module.COUNT == 22 and cache.loads == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(done: int, *, finished: bool = False) -> CrawlProgress:
    return CrawlProgress(done, 1, 2, 3, events_persisted=50, events_dropped=4, elapsed=10.0, finished=finished)


def test_progress_is_one_live_line_on_a_terminal_and_periodic_lines_elsewhere() -> None:
    tty = _Terminal()
    show = ProgressPrinter(tty)
    show(_progress(5))
    show(_progress(6, finished=True))
    assert tty.getvalue() == (
        "\r\x1b[Kfan-out: 5 done (1 failed), 2 running, 3 queued | 5.0 events/s | 4 dropped | 10s"
        "\r\x1b[Kfan-out: 6 done (1 failed), 2 running, 3 queued | 5.0 events/s | 4 dropped | 10s\n"
    )
    plain = io.StringIO()
    show = ProgressPrinter(plain, plain_every=3600)
    show(_progress(5))  # within the period: nothing
    show(_progress(6, finished=True))
    assert plain.getvalue() == "fan-out: 6 done (1 failed), 2 running, 3 queued | 5.0 events/s | 4 dropped | 10s\n"
