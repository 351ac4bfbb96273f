"""Process faults during a real run (real executor, real Chromium): each ends in a recorded outcome, every
event committed before the fault stays readable, and no executor or Chromium process outlives ``quarry run``."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from e2e_helpers import (
    SCRIPTS,
    descendants,
    events_of,
    final_run_record,
    finish_run,
    run_id_from,
    spawn_run,
    wait_for_items,
    watch_descendants,
)

pytestmark = pytest.mark.browser


def _find(pid: int, match: str) -> list[psutil.Process]:
    found = []
    for p in descendants(pid):
        try:
            if match in " ".join(p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


def _assert_prefix_persisted(storage, run_id: str) -> list[dict]:
    rows = events_of(storage, run_id)
    items = [r for r in rows if r["event_type"] == "item"]
    assert len(items) >= 5, "events committed before the fault are readable"
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1)), "no gap, no duplicate"
    return rows


def test_executor_sigkill_mid_run_is_executor_crash(storage, site_url) -> None:
    proc = spawn_run(storage, str(SCRIPTS / "browse_loop.py"), "--job", json.dumps({"url": f"{site_url}/"}))
    seen: set[int] = set()
    wait_for_items(storage, proc, 5)
    watch_descendants(proc, time.monotonic() + 0.5, seen)
    executors = _find(proc.pid, "quarry_executor")
    assert len(executors) == 1, executors
    assert _find(proc.pid, "chrom"), "Chromium runs under the executor"
    executors[0].send_signal(signal.SIGKILL)
    code, out, err = finish_run(proc, seen)
    assert code == 2, out + err
    assert "outcome=executor_crash" in out
    assert "executor killed by signal SIGKILL" in out
    run_id = run_id_from(out)
    _assert_prefix_persisted(storage, run_id)
    record = final_run_record(storage, run_id)
    assert (record["outcome"], record["exit_code"]) == ("executor_crash", 2)


def test_chromium_killed_mid_run_ends_the_run_and_leaves_nothing(storage, site_url) -> None:
    proc = spawn_run(storage, str(SCRIPTS / "browse_loop.py"), "--job", json.dumps({"url": f"{site_url}/"}))
    seen: set[int] = set()
    wait_for_items(storage, proc, 5)
    watch_descendants(proc, time.monotonic() + 0.5, seen)
    browsers = [p for p in _find(proc.pid, "chrom") if "--type=" not in " ".join(p.cmdline())]
    assert browsers, "the browser's main process"
    for p in browsers:
        p.send_signal(signal.SIGKILL)
    code, out, err = finish_run(proc, seen)
    # The script's next page call fails (the browser is gone): an error the script could have handled.
    assert code == 1, out + err
    assert "outcome=script_error" in out
    run_id = run_id_from(out)
    rows = _assert_prefix_persisted(storage, run_id)
    assert rows[-1]["event_type"] == "run_error"
    message = json.loads(rows[-1]["payload"])["message"]
    assert "closed" in message.lower() or "crash" in message.lower(), message
    assert final_run_record(storage, run_id)["outcome"] == "script_error"


def test_renderer_crash_fails_the_waiting_call_promptly(quarry, storage, site_url) -> None:
    started = time.monotonic()
    res = quarry("crash_renderer.py", job={"url": f"{site_url}/"}, timeout=60)
    assert time.monotonic() - started < 30, "a crashed page must not hang the run"
    assert res.code == 1, res.stdout + res.stderr
    assert "outcome=script_error" in res.stdout
    assert "Target crashed" in res.stdout
    rows = events_of(storage, run_id_from(res.stdout))
    assert [r["event_type"] for r in rows] == ["item", "run_error"]


def test_sigkill_of_quarry_run_leaves_committed_events_readable(storage, site_url) -> None:
    """The runtime itself dies without any clean-up: what was committed stays committed and readable."""
    proc = spawn_run(storage, str(SCRIPTS / "browse_loop.py"), "--job", json.dumps({"url": f"{site_url}/"}))
    wait_for_items(storage, proc, 5)
    children = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    # The executor notices its parent is gone (its stdout pipe breaks) and exits, taking Chromium with it.
    _gone, still = psutil.wait_procs(children, timeout=20)
    assert [p for p in still if p.status() != psutil.STATUS_ZOMBIE] == [], still
    rows = events_of(storage)
    assert len(rows) >= 5
    run_ids = {r["run_id"] for r in rows}
    assert len(run_ids) == 1
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
