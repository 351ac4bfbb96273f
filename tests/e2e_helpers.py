"""Helpers shared by the end-to-end tests (importable: ``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
FAKES = Path(__file__).resolve().parent / "fakes"


def read_table(storage: Path, table: str = "events", **filters: str) -> list[dict[str, Any]]:
    """Committed rows of a Lode table through the reader API."""
    from quarry_lode import open_dataset

    ds = open_dataset(str(storage))
    return ds.read(table, **filters).to_pylist()


def events_of(storage: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    rows = read_table(storage, "events", **({"run_id": run_id} if run_id else {}))
    return sorted(rows, key=lambda r: (r["run_id"], r["seq"]))


def run_id_from(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("run_id="), stdout
    return first.split(",", 1)[0].removeprefix("run_id=")


# --------------------------------------------------------------------------- process trees


def spawn_run(storage: Path, *args: str) -> subprocess.Popen[str]:
    """``quarry run ARGS --storage-path STORAGE`` in the background (stdout/stderr captured)."""
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", *args, "--storage-path", str(storage)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def watch_descendants(proc: subprocess.Popen[str], until: float, seen: set[int] | None = None) -> set[int]:
    """Poll the process tree until ``until`` (monotonic) or exit; return every descendant pid seen."""
    seen = set() if seen is None else seen
    while time.monotonic() < until and proc.poll() is None:
        seen.update(c.pid for c in descendants(proc.pid))
        time.sleep(0.1)
    return seen


def alive(pids: set[int]) -> list[str]:
    """The processes of ``pids`` still running (zombies excluded), described for an assertion message."""
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{pid} {p.name()} {' '.join(p.cmdline()[:3])}")
        except psutil.NoSuchProcess:
            pass
    return out


def finish_run(proc: subprocess.Popen[str], seen: set[int], timeout: float = 60) -> tuple[int, str, str]:
    """Wait for ``quarry run`` and assert that no process it started outlives it."""
    seen.update(c.pid for c in descendants(proc.pid))
    out, err = proc.communicate(timeout=timeout)
    deadline = time.monotonic() + 5
    while alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(seen) == [], f"processes outlived quarry run: {alive(seen)}"
    return proc.returncode, out, err


def wait_for_items(storage: Path, proc: subprocess.Popen[str], n: int, timeout: float = 60) -> None:
    """Wait until ``n`` events are committed for the (single) run in ``storage``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "quarry run ended early"
        try:
            if len(read_table(storage, "events")) >= n:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} events committed after {timeout}s")


def final_run_record(storage: Path, run_id: str) -> dict[str, Any]:
    return max(read_table(storage, "runs", run_id=run_id), key=lambda r: r["updated_at"])


def uv_path() -> str:
    """The ``uv`` executable (building wheels needs it); fails the test when it is missing."""
    import shutil

    import pytest

    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is required to build wheels (make setup installs it)")
    return uv
