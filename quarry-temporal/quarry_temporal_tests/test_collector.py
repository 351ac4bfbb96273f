"""The activity's enqueue rules (local fan-out's per-run rules plus the budget and the size cap), the outcome
→ exit code mapping of failed activities, and the dataclass round trips that carry results through failures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from quarry_core.runtime.fanout import dedup_key
from quarry_core.runtime.run import RunSettings
from quarry_temporal.models import QuarryActivityResult, WorkItem, activity_result_from, job_result_from
from quarry_temporal.observe import EnqueueCollector


@pytest.fixture
def scripts(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root.py"
    child = tmp_path / "child.py"
    root.write_text("async def run(ctx): pass\n")
    child.write_text("async def run(ctx): pass\n")
    return root, child


def _settings(script: Path, job: dict[str, object] | None = None) -> RunSettings:
    return RunSettings(script=str(script), run_id="r1", source="src", job=job or {})


def test_rules_in_local_fan_out_order(scripts: tuple[Path, Path], tmp_path: Path) -> None:
    root, child = scripts
    s = _settings(root, {"page": 1})
    c = EnqueueCollector(s, collect=True, budget=2, cwd=str(tmp_path))
    c.decide(s, {"target": "missing.py"})  # target_not_found
    c.decide(s, {"target": "child.py", "params": {"a": 1}, "category": "x" * 300})  # invalid_partition
    c.decide(s, {"target": "root.py", "params": {"page": 1}})  # the run's own key: deduped
    c.decide(s, {"target": "child.py", "params": {"a": 1}})  # collected, relative to cwd
    c.decide(s, {"target": str(child), "params": {"a": 1}})  # same key (absolute): deduped
    c.decide(s, {"target": "child.py", "params": {"a": 2}, "source": "other"})  # collected
    c.decide(s, {"target": "child.py", "params": {"a": 3}})  # over budget: only its key goes back
    assert c.received == 7
    assert c.deduped == 2
    assert c.skipped == {"target_not_found": 1, "invalid_partition": 1}
    assert c.skipped_total == 2
    assert c.over_budget == [dedup_key(str(child), {"a": 3})]
    assert [(i.target, i.params, i.source, i.category) for i in c.items] == [
        (str(child), {"a": 1}, None, None),
        (str(child), {"a": 2}, "other", None),
    ]
    assert c.items[0].dedup_key == dedup_key(str(child), {"a": 1})
    assert c.own_key == dedup_key(str(root), {"page": 1})


def test_without_collect_enqueues_are_only_counted(scripts: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = scripts
    s = _settings(root)
    c = EnqueueCollector(s, collect=False, budget=10, cwd=str(tmp_path))
    c.decide(s, {"target": "child.py"})
    c.decide(s, {"target": "missing.py"})
    assert (c.received, c.deduped, c.skipped_total, c.items) == (2, 0, 0, [])


def test_size_cap_counts_the_rest_skipped(scripts: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = scripts
    s = _settings(root)
    c = EnqueueCollector(s, collect=True, budget=100, cwd=str(tmp_path), max_bytes=600)
    for i in range(10):
        c.decide(s, {"target": "child.py", "params": {"i": i, "pad": "p" * 100}})
    assert 0 < len(c.items) < 10
    assert c.skipped == {"result_too_large": 10 - len(c.items)}


def test_results_survive_the_json_round_trip_of_failure_details() -> None:
    result = QuarryActivityResult(
        run_id="r", outcome="script_error", message="boom", exit_code=1, enqueued=[WorkItem("/t.py", {"a": 1}, "k")]
    )
    assert activity_result_from(dataclasses.asdict(result)) == result
    assert activity_result_from({"nonsense": 1}) is None
    assert activity_result_from("text") is None
    job = {
        "outcome": "script_error",
        "exit_code": 1,
        "run_id": "r",
        "attempts": [],
        "result": dataclasses.asdict(result),
    }
    parsed = job_result_from(job)
    assert parsed is not None and parsed.result == result
    assert job_result_from({"outcome": "x"}) is None
