from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quarry_core.interfaces import RunPartition
from quarry_core.protocol.frames import Event
from quarry_lode.backend import LodeBackend
from quarry_lode.errors import NoMetricsFound
from quarry_lode.reader import open_dataset

MakeEvent = Callable[..., Event]


def write(b: LodeBackend, run_id: str, events: list[Event], source: str = "s") -> str | None:
    async def go() -> str | None:
        rs = b.open_run(RunPartition(source, "c", "2026-11-25", run_id))
        try:
            return await rs.write_events(events, policy="strict")
        finally:
            await rs.close()  # as a run does: waits for the deferred pointer

    return asyncio.run(go())


def metrics(ts: str, **extra: object) -> dict[str, object]:
    return {"ts": ts, "policy": "strict", "executor": "playwright", "storage_backend": "file", **extra}


@pytest.mark.parametrize("codec", ["parquet", "jsonl"])
def test_filters_compare_whole_values(
    codec: str, backend_factory: Callable[..., LodeBackend], make_event: MakeEvent
) -> None:
    b = backend_factory(codec=codec)
    write(b, "run-1", [make_event(1, run_id="run-1")])
    write(b, "run-10", [make_event(1, run_id="run-10"), make_event(2, run_id="run-10")])
    ds = open_dataset(b.root_url)
    assert ds.read(run_id="run-1").column("run_id").to_pylist() == ["run-1"]
    assert ds.read(run_id="run-10").num_rows == 2
    assert ds.read(run_id="run-").num_rows == 0
    assert ds.read(source="nope").num_rows == 0
    assert ds.read().num_rows == 3
    assert ds.read(columns=["seq", "run_id"]).column_names == ["seq", "run_id"]


def test_rows_in_commit_order(backend_factory: Callable[..., LodeBackend], make_event: MakeEvent) -> None:
    b = backend_factory()
    write(b, "b", [make_event(1, run_id="b")])
    write(b, "a", [make_event(1, run_id="a")])
    write(b, "b", [make_event(2, run_id="b")])
    assert open_dataset(b.root_url).read().column("run_id").to_pylist() == ["b", "a", "b"]


def test_partition_columns_are_strings(backend_factory: Callable[..., LodeBackend], make_event: MakeEvent) -> None:
    b = backend_factory()
    write(b, "123", [make_event(1, run_id="123")], source="42")
    t = open_dataset(b.root_url).read()
    assert t.schema.field("run_id").type == "string"
    assert t.column("source").to_pylist() == ["42"]
    assert t.column("day").to_pylist() == ["2026-11-25"]


def test_empty_dataset(tmp_path: Path) -> None:
    ds = open_dataset(str(tmp_path))
    assert ds.read().num_rows == 0
    assert "event_type" in ds.read().column_names
    assert ds.snapshots() == []
    assert ds.latest_snapshot_id() is None
    with pytest.raises(NoMetricsFound):
        ds.latest_metrics()


def test_snapshots_and_latest(backend_factory: Callable[..., LodeBackend], make_event: MakeEvent) -> None:
    b = backend_factory()
    ids = [write(b, "r", [make_event(i, run_id="r")]) for i in (1, 2, 3)]
    ds = open_dataset(b.root_url)
    assert [m.snapshot_id for m in ds.snapshots()] == ids[::-1]  # newest first (issue 3)
    assert [m.snapshot_id for m in ds.snapshots(since=ids[0])] == ids[:0:-1]
    assert [m.snapshot_id for m in ds.snapshots(since=ids[-1])] == []
    assert ds.latest_snapshot_id() == ids[-1]
    Path(b.dataset.layout.pointer_path).unlink()
    assert ds.latest_snapshot_id() == ids[-1]  # falls back to the listing


def test_runs_newest_record(backend_factory: Callable[..., LodeBackend]) -> None:
    b = backend_factory()
    for run_id in ("r1", "r2"):
        rs = b.open_run(RunPartition("s", "c", "2026-11-25", run_id))
        asyncio.run(
            rs.write_records(
                {
                    "runs": [
                        {"state": "running", "started_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}
                    ]
                }
            )
        )
    rs = b.open_run(RunPartition("s", "c", "2026-11-25", "r1"))
    asyncio.run(
        rs.write_records(
            {
                "runs": [
                    {
                        "state": "succeeded",
                        "started_at": "2026-11-25T10:00:00Z",
                        "updated_at": "2026-11-25T10:05:00Z",
                        "event_sink_errors": {"redis": 2},
                    }
                ],
                "metrics": [metrics("2026-11-25T10:05:00Z")],
            }
        )
    )
    ds = open_dataset(b.root_url)
    runs = ds.runs()
    assert [(r["run_id"], r["state"]) for r in runs] == [("r1", "succeeded"), ("r2", "running")]
    r1 = ds.run("r1")
    assert r1 is not None and r1["event_sink_errors"] == {"redis": 2}
    assert r1["updated_at"] == datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
    assert ds.run("nope") is None
    assert ds.runs(source="other") == []


def test_latest_metrics(backend_factory: Callable[..., LodeBackend]) -> None:
    b = backend_factory()
    for run_id, ts in (("r1", "2026-11-25T10:00:00Z"), ("r2", "2026-11-25T11:00:00Z"), ("r3", "2026-11-25T09:00:00Z")):
        rs = b.open_run(RunPartition("s" if run_id != "r2" else "other", "c", "2026-11-25", run_id))
        asyncio.run(
            rs.write_records(
                {"metrics": [metrics(ts, events_received_total=int(run_id[1]), flush_triggers={"count": 1})]}
            )
        )
    ds = open_dataset(b.root_url)
    assert ds.latest_metrics()["run_id"] == "r2"
    assert ds.latest_metrics(source="s")["run_id"] == "r1"
    m = ds.latest_metrics(run_id="r3")
    assert m["events_received_total"] == 3 and m["flush_triggers"] == {"count": 1}
    with pytest.raises(NoMetricsFound, match="run_id=r9"):
        ds.latest_metrics(run_id="r9")


def test_metrics_missing_required_field(backend_factory: Callable[..., LodeBackend]) -> None:
    from quarry_lode.codecs import prepare_record
    from quarry_lode.layout import Partition

    b = backend_factory()
    row = prepare_record("metrics", metrics("2026-11-25T10:00:00Z"), {"run_id": "r1"})
    row["executor"] = None  # written by some other, older writer
    b.dataset.write({("metrics", Partition("s", "c", "2026-11-25", "r1", "metrics")): [row]}, metadata={})
    with pytest.raises(ValueError, match=r"^metrics record missing required field: executor$"):
        open_dataset(b.root_url).latest_metrics()


def test_memory_and_file_urls(
    backend_factory: Callable[..., LodeBackend], memory_url: str, make_event: MakeEvent
) -> None:
    m = backend_factory(path=memory_url)
    write(m, "r1", [make_event(1)])
    assert open_dataset(memory_url).read().num_rows == 1
    f = backend_factory()
    write(f, "r1", [make_event(1)])
    assert open_dataset(f.root_url).read().num_rows == 1  # file:// URL
    assert open_dataset(f.dataset.root).read().num_rows == 1  # plain path
