"""Timeouts, signals, reports: the run is stopped, flushed and recorded, and no executor or Chromium
process outlives ``quarry run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from e2e_helpers import ROOT, SCRIPTS, events_of, read_table, run_id_from

pytestmark = pytest.mark.browser


def _spawn(storage: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", *args, "--storage-path", str(storage)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _watch_descendants(proc: subprocess.Popen[str], until: float) -> set[int]:
    """Poll the process tree until ``until`` (monotonic) or exit; return every descendant pid seen."""
    seen: set[int] = set()
    parent = psutil.Process(proc.pid)
    while time.monotonic() < until and proc.poll() is None:
        try:
            seen.update(c.pid for c in parent.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    return seen


def _alive(pids: set[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{pid} {p.name()} {' '.join(p.cmdline()[:3])}")
        except psutil.NoSuchProcess:
            pass
    return out


def _finish(proc: subprocess.Popen[str], seen: set[int]) -> tuple[int, str, str]:
    parent = psutil.Process(proc.pid)
    try:
        seen.update(c.pid for c in parent.children(recursive=True))
    except psutil.NoSuchProcess:
        pass
    out, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 5
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(seen) == [], f"processes outlived quarry run: {_alive(seen)}"
    return proc.returncode, out, err


def test_timeout_stops_a_hung_script(storage: Path) -> None:
    proc = _spawn(storage, str(SCRIPTS / "hang.py"), "--timeout", "3s", "--cancel-grace", "1s")
    seen = _watch_descendants(proc, time.monotonic() + 2.5)
    assert any("quarry_executor" in " ".join(psutil.Process(p).cmdline()) for p in seen if psutil.pid_exists(p))
    code, out, err = _finish(proc, seen)
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
    proc = _spawn(storage, str(SCRIPTS / "slow_crawl.py"), "--cancel-grace", "2s")
    seen = _watch_descendants(proc, time.monotonic() + 4)
    os.kill(proc.pid, sig)
    rc, out, err = _finish(proc, seen)
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
