"""Timeouts, signals, reports: the run is stopped, flushed and recorded, and no executor or Chromium
process outlives ``quarry run``."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from e2e_helpers import SCRIPTS, events_of, finish_run, read_table, run_id_from, spawn_run, watch_descendants

pytestmark = pytest.mark.browser


def test_timeout_stops_a_hung_script(storage: Path) -> None:
    proc = spawn_run(storage, str(SCRIPTS / "hang.py"), "--timeout", "3s", "--cancel-grace", "1s")
    seen = watch_descendants(proc, time.monotonic() + 2.5)
    assert any("quarry_executor" in " ".join(psutil.Process(p).cmdline()) for p in seen if psutil.pid_exists(p))
    code, out, err = finish_run(proc, seen)
    assert code == 1, out + err
    assert "outcome=script_error" in out
    assert "Message: run exceeded timeout of 3s" in out
    run_id = run_id_from(out)
    rows = events_of(storage, run_id)
    assert [r["event_type"] for r in rows] == ["item", "run_error"]
    assert json.loads(rows[-1]["payload"])["error_type"] == "timeout"
    final = max(read_table(storage, "runs", run_id=run_id), key=lambda r: r["updated_at"])
    assert (final["state"], final["error_type"]) == ("failed", "timeout")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_cancels_flushes_and_records(storage: Path, sig: signal.Signals, code: int) -> None:
    proc = spawn_run(storage, str(SCRIPTS / "slow_crawl.py"), "--cancel-grace", "2s")
    seen = watch_descendants(proc, time.monotonic() + 4)
    os.kill(proc.pid, sig)
    rc, out, err = finish_run(proc, seen)
    assert rc == code, out + err
    assert "outcome=canceled" in out
    assert f"run canceled by {sig.name}" in out
    run_id = run_id_from(out)
    rows = events_of(storage, run_id)
    items = [r for r in rows if r["event_type"] == "item"]
    assert len(items) > 10, "events before the signal are persisted"
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[-1]["event_type"] == "run_error"
    assert json.loads(rows[-1]["payload"])["error_type"] == "canceled"
    final = max(read_table(storage, "runs", run_id=run_id), key=lambda r: r["updated_at"])
    assert final["state"] == "canceled"
    assert final["exit_code"] == code


def test_report_file_and_stderr(quarry, storage, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    res = quarry("raises.py", "--report", str(report), "--quiet")
    assert res.code == 1
    assert res.stdout == ""
    data = json.loads(report.read_text())
    assert oct(report.stat().st_mode & 0o777) == "0o644"
    assert data["outcome"] == "script_error" and data["exit_code"] == 1 and data["message"] == "boom"
    assert data["error_type"] == "script_error"
    assert data["policy"]["name"] == "strict" and data["policy"]["events_persisted"] == 2
    assert data["metrics"]["runs_failed_total"] == 1
    assert data["terminal_summary"]["error_type"] == "script_error"
    assert "job_id" not in data and "parent_run_id" not in data  # optional keys omitted, never null
    assert all(v is not None for v in data.values())
    res = quarry("raises.py", "--report", "-", "--quiet")
    start = res.stderr.index("{\n")
    assert json.loads(res.stderr[start:])["outcome"] == "script_error"
