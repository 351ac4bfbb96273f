"""Every path of the lifecycle hook table (runtime.md §14.2, §14.3) through ``quarry run`` with real Chromium: which
hooks run, in which order, and what reaches storage."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import ROOT, SCRIPTS, events_of, run_id_from

pytestmark = pytest.mark.browser


def _trace(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _hooks(path: Path) -> list[str]:
    return [t["hook"] for t in _trace(path)]


def _run(quarry: Any, tmp_path: Path, mode: str, *args: str, **flags: Any) -> tuple[Any, Path]:
    trace = tmp_path / f"{mode}.trace"
    res = quarry("hooks_trace.py", *args, job={"mode": mode, "trace": str(trace), **flags})
    return res, trace


def test_success_runs_every_hook_in_order(quarry: Any, tmp_path: Path, storage: Path) -> None:
    res, trace = _run(quarry, tmp_path, "ok", replace_job=True, cleanup_raises=True)
    assert res.code == 0, res.stderr  # a raising cleanup changes nothing
    assert _hooks(trace) == ["prepare", "before_run", "run", "after_run", "before_terminal", "cleanup"]
    entries = {t["hook"]: t for t in _trace(trace)}
    assert entries["run"]["replaced"] is True  # prepare's job replaced the original
    assert entries["before_terminal"]["outcome"] == "completed"
    assert entries["cleanup"]["emit_refused"] is True  # emits after the terminal raise TerminalEventError
    assert "cleanup hook raised RuntimeError: cleanup broke (ignored)" in res.stderr
    events = events_of(storage, run_id_from(res.stdout))
    assert [e["type"] for e in events] == ["item", "item", "run_complete"]
    assert json.loads(events[1]["payload"])["item_type"] == "last_words"  # before_terminal may emit


def test_script_error_runs_on_error_then_before_terminal(quarry: Any, tmp_path: Path, storage: Path) -> None:
    res, trace = _run(quarry, tmp_path, "run_raises", "--no-error-snapshot", hooks_raise=True)
    assert res.code == 1, res.stderr
    assert _hooks(trace) == ["prepare", "before_run", "run", "on_error", "before_terminal", "cleanup"]
    # errors of on_error and before_terminal are swallowed: the run still ends with the script's error
    assert "on_error hook raised RuntimeError: on_error broke (ignored)" in res.stderr
    assert "before_terminal hook raised RuntimeError: before_terminal broke (ignored)" in res.stderr
    entries = {t["hook"]: t for t in _trace(trace)}
    assert entries["on_error"]["error"] == "run broke"
    assert entries["before_terminal"] == {"hook": "before_terminal", "outcome": "error", "error": "run broke"}
    events = events_of(storage, run_id_from(res.stdout))
    terminal = json.loads(events[-1]["payload"])
    assert events[-1]["type"] == "run_error" and terminal["error_type"] == "script_error"
    assert "error_snapshot" not in terminal  # --no-error-snapshot
    assert "Outcome: script_error" in res.stdout and "Message: run broke" in res.stdout


def test_on_error_writing_the_terminal_skips_before_terminal(quarry: Any, tmp_path: Path, storage: Path) -> None:
    res, trace = _run(quarry, tmp_path, "on_error_terminal")
    assert res.code == 1, res.stderr
    assert _hooks(trace) == ["prepare", "before_run", "run", "on_error", "cleanup"]
    events = events_of(storage, run_id_from(res.stdout))
    assert json.loads(events[-1]["payload"])["error_type"] == "handled"


@pytest.mark.parametrize(("mode", "reason"), [("skip", "stale job"), ("skip_dict", None)])
def test_prepare_skip_launches_nothing_else(
    quarry: Any, tmp_path: Path, storage: Path, mode: str, reason: str | None
) -> None:
    res, trace = _run(quarry, tmp_path, mode)
    assert res.code == 0, res.stderr
    assert _hooks(trace) == ["prepare"]  # no browser hooks, no cleanup
    events = events_of(storage, run_id_from(res.stdout))
    assert [e["type"] for e in events] == ["run_complete"]
    summary = json.loads(events[0]["payload"])["summary"]
    assert summary == ({"skipped": True, "reason": reason} if reason else {"skipped": True})


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("prepare_raises", "prepare hook failed: RuntimeError: prepare broke"),
        ("prepare_bad", 'prepare hook must return PrepareResult(action="continue" | "skip"), got: 42'),
        ("prepare_unknown", "prepare hook returned unrecognized action: later"),
    ],
)
def test_prepare_failures_crash_without_terminal(
    quarry: Any, tmp_path: Path, storage: Path, mode: str, message: str
) -> None:
    res, trace = _run(quarry, tmp_path, mode)
    assert res.code == 2, res.stderr
    assert _hooks(trace) == ["prepare"]
    assert "Outcome: executor_crash" in res.stdout and message in res.stdout
    assert events_of(storage, run_id_from(res.stdout)) == []


def test_signal_skips_after_run_on_error_and_before_terminal_but_runs_cleanup(tmp_path: Path) -> None:
    storage = tmp_path / "data"
    trace = tmp_path / "hang.trace"
    job = json.dumps({"mode": "hang", "trace": str(trace)})
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", str(SCRIPTS / "hooks_trace.py"), "--job", job]
    proc = subprocess.Popen(
        [*cmd, "--storage-path", str(storage)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while "run" not in _hooks(trace) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert _hooks(trace) == ["prepare", "before_run", "run", "cleanup"]
    events = events_of(storage, run_id_from(out))
    assert json.loads(events[-1]["payload"])["error_type"] == "canceled"
    assert "Outcome: canceled" in out


def test_browser_failure_crashes_after_prepare_without_other_hooks(quarry: Any, tmp_path: Path) -> None:
    bad = tmp_path / "no-chromium"
    res = quarry(
        "hooks_trace.py",
        job={"mode": "ok", "trace": str(tmp_path / "nobrowser.trace")},
        env={"QUARRY_BROWSER_EXECUTABLE": str(bad)},
    )
    assert res.code == 2, res.stdout + res.stderr
    assert "browser launch failed" in res.stdout
    assert _hooks(tmp_path / "nobrowser.trace") == ["prepare"]  # no before_run, no cleanup without a context


def test_non_callable_hook_is_a_load_error(quarry: Any, storage: Path) -> None:
    res = quarry("hooks_noncallable.py")
    assert res.code == 2
    assert "after_run hook is not callable" in res.stdout
    res = quarry("hooks_noncallable.py", "--dry-run")
    assert res.code == 1 and "after_run hook is not callable" in res.stderr
