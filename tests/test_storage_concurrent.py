"""Two `quarry run` processes write one local dataset at the same time (lode.md §5-6): both runs' snapshots are
in the history, no manifest is lost, every data file on disk is committed, and the pointer names the newest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from storage_helpers import release_together

from e2e_helpers import ROOT, run_id_from

ITEMS = 100  # strict policy, one item every 5 ms: one commit per item or per few (group commit), racing


def test_two_concurrent_runs_lose_no_snapshot(tmp_path: Path, storage: Path, fake_python: str) -> None:
    from quarry_lode import open_dataset
    from quarry_lode.layout import TABLES

    script = tmp_path / "concurrent.py"
    script.write_text("async def run(ctx):\n    pass\n")
    gate = tmp_path / "gate"
    env = {**os.environ, "FAKE_SCENARIO": "ok", "FAKE_ITEMS": str(ITEMS), "FAKE_START_GATE": str(gate)}
    env["FAKE_ITEM_PAUSE"] = "0.005"
    cmd = [
        sys.executable, "-m", "quarry_core.cli", "run", str(script),
        "--storage-path", str(storage), "--executor-python", fake_python,
    ]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        for _ in range(2)
    ]
    release_together(gate, procs)
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out + err
    run_ids = {run_id_from(out) for out, _ in outs}
    assert len(run_ids) == 2

    ds = open_dataset(str(storage))
    manifests = ds.snapshots()
    by_run: dict[str, int] = {}
    for m in manifests:
        by_run[m.metadata["run_id"]] = by_run.get(m.metadata["run_id"], 0) + 1
    assert set(by_run) == run_ids
    for run_id in run_ids:
        # ITEMS items + run_complete in many commits (a group commit holds only what arrived together), plus the
        # running and final run records; every event stored exactly once
        assert by_run[run_id] >= 10 + 2, by_run
        rows = ds.read("events", run_id=run_id).to_pylist()
        assert sorted(r["seq"] for r in rows) == list(range(1, ITEMS + 2))

    # The two runs really overlapped: their commits interleave in time.
    spans = [[m.snapshot_id for m in manifests if m.metadata["run_id"] == r] for r in sorted(run_ids)]
    assert min(spans[0]) < max(spans[1]) and min(spans[1]) < max(spans[0]), "runs did not overlap"

    # No lost manifest: every data file on disk is listed by exactly one manifest, and every listed file exists.
    base = Path(ds.layout.base)
    listed = [f.path for m in manifests for f in m.files]
    assert len(listed) == len(set(listed))
    on_disk = {str(p.relative_to(base)) for t in TABLES for p in (base / t).rglob("part-*")}
    assert on_disk == set(listed)
    assert not list(base.rglob("*.tmp"))

    # Every event of both runs is readable and complete, in order.
    for run_id in run_ids:
        rows = ds.read("events", run_id=run_id).to_pylist()
        assert sorted(r["seq"] for r in rows) == list(range(1, ITEMS + 2))
        assert [r["event_type"] for r in rows].count("item") == ITEMS
        final = ds.run(run_id)
        assert final is not None and final["outcome"] == "success"

    # The pointer only moved forward: it names the newest committed snapshot.
    assert ds.latest_snapshot_id() == max(m.snapshot_id for m in manifests)
