"""LodeDataset.iter_batches: the reader API's streaming form (partition pruning, column and row filters)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc

from quarry_core.interfaces import RunPartition, StorageConfig
from quarry_core.protocol.frames import Event
from quarry_lode.backend import LodeBackend
from quarry_lode.reader import open_dataset


def test_iter_batches(tmp_path: Path, make_event: Callable[..., Event]) -> None:
    backend = LodeBackend(StorageConfig(path=str(tmp_path)))
    for run_id in ("run-1", "run-10"):
        rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", run_id))
        for batch in ([1, 2], [3, 4, 5]):
            events = [make_event(seq, run_id=run_id) for seq in batch] + [
                make_event(batch[-1] + 100, "log", run_id=run_id)
            ]
            asyncio.run(rs.write_events(events, policy="strict"))
    ds = open_dataset(str(tmp_path))

    batches = list(ds.iter_batches("events", run_id="run-1", event_type="item"))
    assert [b.num_rows for b in batches] == [2, 3]  # one file per snapshot, in commit order
    assert [r["seq"] for b in batches for r in b.to_pylist()] == [1, 2, 3, 4, 5]
    assert {r["run_id"] for b in batches for r in b.to_pylist()} == {"run-1"}  # run-10 never matches

    selected = list(ds.iter_batches("events", source="shop/eu", columns=["run_id", "seq"], where=pc.field("seq") >= 4))
    rows = [r for b in selected for r in b.to_pylist()]
    assert all(set(r) == {"run_id", "seq"} for r in rows)
    assert sorted((r["run_id"], r["seq"]) for r in rows) == sorted(
        (run_id, seq) for run_id in ("run-1", "run-10") for seq in (4, 5, 102, 105)
    )
    assert all(b.num_rows for b in selected)  # files without matching rows are skipped
    whole = ds.read("events", source="shop/eu")
    assert sum(b.num_rows for b in ds.iter_batches("events", source="shop/eu")) == whole.num_rows
    assert list(ds.iter_batches("events", source="nowhere")) == []
