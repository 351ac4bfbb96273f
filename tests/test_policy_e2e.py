"""Ingestion policies end to end through ``quarry run`` (real executor, real Lode on disk): storage failures
induced by the script itself under each flush mode (CONTRACT_POLICY §5.5, §6), permanent failure, and a 200 k item
run under ``--policy buffered --buffer-events 1000`` with bounded memory and batches written during the run."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import ROOT, SCRIPTS, read_table, run_id_from

FAULT = SCRIPTS / "sink_fault.py"
ARTIFACT_BYTES = b"0123456789" * 100


def _metrics(storage: Path, run_id: str) -> dict[str, Any]:
    (m,) = read_table(storage, "metrics", run_id=run_id)
    return m


def _data_files(storage: Path, run_id: str, table: str, event_type: str) -> list[str]:
    pattern = (
        storage / "datasets" / "quarry" / table / "*" / "*" / "*" / f"run_id={run_id}" / f"event_type={event_type}"
    )
    return glob.glob(str(pattern / "*.parquet"))


# (policy flags, chunk copies committed after the retry, data files of the artifact record: >1 = a new snapshot id)
FLUSH_MODES = {
    "at_least_once": (["--policy", "buffered", "--flush-mode", "at_least_once"], 2, "new"),
    "chunks_first": (["--policy", "buffered", "--flush-mode", "chunks_first"], 1, "new"),
    "two_phase": (["--policy", "buffered", "--flush-mode", "two_phase"], 1, "same"),
    "streaming": (["--policy", "streaming", "--flush-count", "4"], 1, "new"),
}


@pytest.mark.parametrize("mode", list(FLUSH_MODES))
def test_transient_storage_failure_under_each_flush_mode(quarry, storage, mode):
    flags, chunk_copies, event_snapshot = FLUSH_MODES[mode]
    if flags[1] == "buffered":
        flags = [*flags, "--buffer-events", "4", "--batch-events", "4"]
    res = quarry(FAULT, *flags, "--max-flush-retries", "6", job={"storage": str(storage), "items": 3})
    assert res.code == 0, res.stdout + res.stderr
    run_id = run_id_from(res.stdout)
    label = "streaming" if mode == "streaming" else "buffered"
    assert f"Warning: {label} flush failed (attempt 1/7): " in res.stderr

    events = read_table(storage, "events", run_id=run_id)
    seqs = sorted(r["seq"] for r in events)
    assert seqs == list(range(1, 6)), "every event exactly once: the failure was not ambiguous"
    chunks = read_table(storage, "chunks", run_id=run_id)
    # the chunk phase committed before the event phase failed: at_least_once sends it again, the others skip it
    assert len(chunks) == chunk_copies
    assert all(c["data"] == ARTIFACT_BYTES for c in chunks)
    # the failed event phase had already written the artifact record's file: two_phase retries under the same
    # snapshot id (the file is replaced), the other modes under a new one (the first file stays an orphan)
    artifact_files = _data_files(storage, run_id, "events", "artifact")
    assert len(artifact_files) == (1 if event_snapshot == "same" else 2)

    m = _metrics(storage, run_id)
    assert m["policy_flush_failures_total"] >= 1
    assert m["lode_write_retry_total"] >= m["policy_flush_failures_total"]
    assert m["events_received_total"] == m["events_persisted_total"] == 5
    assert m["events_unflushed_total"] == m["events_dropped_total"] == 0
    assert f"policy_flush_failures_total: {m['policy_flush_failures_total']}" in res.stdout


@pytest.mark.parametrize(
    "flags",
    [
        ["--policy", "buffered", "--buffer-events", "4", "--batch-events", "4", "--flush-mode", "two_phase"],
        ["--policy", "streaming", "--flush-count", "4"],
    ],
    ids=["buffered", "streaming"],
)
def test_permanent_storage_failure_is_policy_failure_with_the_loss_counted(quarry, storage, flags):
    res = quarry(FAULT, *flags, "--max-flush-retries", "1", job={"storage": str(storage), "repair": False})
    assert res.code == 3, res.stdout + res.stderr
    assert "outcome=policy_failure" in res.stdout
    assert "flush failed permanently after 1 retries" in res.stdout
    assert "flush failed (attempt 2/2): " in res.stderr
    run_id = run_id_from(res.stdout)
    m = _metrics(storage, run_id)
    assert m["runs_failed_total"] == 1
    assert m["events_unflushed_total"] >= 1
    assert (
        m["events_received_total"]
        == m["events_persisted_total"] + m["events_dropped_total"] + m["events_unflushed_total"]
    )
    assert f"Events Unflushed: {m['events_unflushed_total']}" in res.stdout
    assert not [r for r in read_table(storage, "events", run_id=run_id) if r["event_type"] == "item"]


def _run_measured(storage: Path, n: int, *flags: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """``quarry run`` of ``many_items.py`` with ``n`` items; returns the result and the runtime's peak RSS."""
    import psutil

    cmd = [
        sys.executable,
        "-m",
        "quarry_core.cli",
        "run",
        str(SCRIPTS / "many_items.py"),
        "--storage-path",
        str(storage),
    ]
    cmd += ["--job", json.dumps({"n": n}), *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ)
    runtime = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, runtime.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), peak


@pytest.mark.slow
def test_buffered_200k_items_with_bounded_memory_and_mid_run_flushes(tmp_path):
    small, small_peak = _run_measured(tmp_path / "small", 20_000, "--policy", "buffered", "--buffer-events", "1000")
    assert small.returncode == 0, small.stderr
    res, peak = _run_measured(tmp_path / "big", 200_000, "--policy", "buffered", "--buffer-events", "1000")
    assert res.returncode == 0, res.stderr
    storage = tmp_path / "big"
    run_id = run_id_from(res.stdout)
    m = _metrics(storage, run_id)
    n_events = 200_000 + 200 + 1  # items, progress logs, run_complete
    assert m["events_received_total"] == n_events
    assert m["events_persisted_total"] + m["events_dropped_total"] == n_events
    assert m["events_unflushed_total"] == 0
    assert set(dict(m["dropped_by_type"] or {})) <= {"log"}  # only droppable events may go
    dropped = m["events_dropped_total"]
    assert res.stdout.count(f"Events Dropped: {dropped}") == 1
    if dropped:  # the writer lagged: every drop is in the summary, the metrics record and a burst warning
        assert f"events_dropped{{type=log}}: {dropped}" in res.stdout
        # a droppable event is refused when the buffer is full, or evicted to make room for a non-droppable one
        # (policies.md §5.2); which one depends on when the writer lagged
        reasons = dict(m["dropped_by_reason"])
        assert set(reasons) <= {"buffer_full", "evicted_for_non_droppable"}, reasons
        assert sum(reasons.values()) == dropped
        assert "Warning: buffered policy: drop burst ended: " in res.stderr
    # bounded: never more than 1000 events held; batches (500 by default) were written during the run
    assert 0 < m["buffer_high_water_events"] <= 1000
    triggers = dict(m["flush_triggers"])
    assert triggers["count"] >= 200_000 // 500 - 1 and triggers["termination"] == 1
    item_files = _data_files(storage, run_id, "events", "item")
    assert len(item_files) >= 399
    rows = read_table(storage, "events", run_id=run_id, event_type="item")
    assert len(rows) == 200_000 and sorted(r["seq"] for r in rows)[-1] <= n_events
    # memory does not grow with the run: 10x the items, about the same peak
    assert peak <= small_peak * 1.25 + 16 * 2**20, (peak, small_peak)
