"""Helpers of the storage end-to-end tests (importable: ``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def release_together(gate: Path, procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    """Wait until every fake executor is ready (``<gate>.<pid>.ready``), then let them all emit at once."""
    deadline = time.monotonic() + timeout
    while len(list(gate.parent.glob(f"{gate.name}.*.ready"))) < len(procs):
        assert all(p.poll() is None for p in procs), "a run ended before its executor was ready"
        assert time.monotonic() < deadline, "executors did not start"
        time.sleep(0.01)
    gate.touch()
