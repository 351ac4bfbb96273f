"""Load: a million events through the streaming policy keep the runtime's memory flat, and a long run leaks no
file descriptors. Slow (``-m 'not slow'`` skips them locally); CI runs them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from e2e_helpers import SCRIPTS, read_table, spawn_run

pytestmark = pytest.mark.slow


def _run_sampled(storage: Path, n: int) -> tuple[int, int, str]:
    """Run ``emit_n.py`` with ``n`` items under streaming; return (peak runtime RSS, peak open fds, stdout)."""
    proc = spawn_run(
        storage,
        str(SCRIPTS / "emit_n.py"),
        "--job",
        json.dumps({"n": n}),
        "--policy",
        "streaming",
        "--flush-count",
        "5000",
        "--quiet",
        "--report",
        str(storage.parent / f"report-{n}.json"),
    )
    runtime = psutil.Process(proc.pid)
    peak_rss = peak_fds = 0
    while proc.poll() is None:
        try:
            peak_rss = max(peak_rss, runtime.memory_info().rss)
            peak_fds = max(peak_fds, runtime.num_fds())
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    return peak_rss, peak_fds, (storage.parent / f"report-{n}.json").read_text()


def test_a_million_events_keep_runtime_memory_flat(tmp_path: Path) -> None:
    small_rss, small_fds, _ = _run_sampled(tmp_path / "small" / "data", 100_000)
    large_rss, large_fds, report_text = _run_sampled(tmp_path / "large" / "data", 1_000_000)
    report = json.loads(report_text)
    assert report["outcome"] == "success"
    assert report["policy"]["events_persisted"] == 1_000_001  # the items and run_complete
    assert report["policy"]["events_dropped"] == 0
    # Memory does not grow with the number of events: 10× the events, at most 10 % more memory (plus 8 MiB of
    # allocator noise), and file descriptors stay where they were.
    assert large_rss <= small_rss * 1.1 + 8 * 1024 * 1024, (small_rss, large_rss)
    assert large_fds <= small_fds + 4, (small_fds, large_fds)
    rows = read_table(tmp_path / "large" / "data", "events", run_id=report["run_id"], event_type="item")
    assert len(rows) == 1_000_000
