"""lode.md §12: raw Hive readers (pyarrow.dataset, DuckDB) see every event row with decoded partitions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from quarry_core.interfaces import RunPartition, StorageConfig
from quarry_core.protocol.frames import Event
from quarry_lode.backend import LodeBackend
from quarry_lode.layout import PARTITION_KEYS
from quarry_lode.reader import open_dataset

KEYS = list(PARTITION_KEYS)


def populate(root: Path, codec: str, make_event: Callable[..., Event]) -> None:
    backend = LodeBackend(StorageConfig(path=str(root), codec=codec))
    rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", "r1"))
    events = [make_event(1), make_event(2), make_event(3), make_event(4, "log")]
    assert asyncio.run(rs.write_events(events, policy="strict")) is not None


def check(rows: list[dict[str, object]]) -> None:
    assert len(rows) == 4
    assert {r["source"] for r in rows} == {"shop/eu"}
    assert sorted(str(r["event_type"]) for r in rows) == ["item", "item", "item", "log"]
    assert {r["run_id"] for r in rows} == {"r1"}


def hive() -> pads.Partitioning:
    return pads.partitioning(pa.schema([(k, pa.string()) for k in KEYS]), flavor="hive")


@pytest.mark.parametrize(("codec", "fmt"), [("parquet", "parquet"), ("jsonl", "json")])
def test_pyarrow_dataset(tmp_path: Path, make_event: Callable[..., Event], codec: str, fmt: str) -> None:
    populate(tmp_path, codec, make_event)
    dataset = pads.dataset(f"{tmp_path}/datasets/quarry/events", format=fmt, partitioning=hive())
    check(dataset.to_table().to_pylist())


def test_reader_to_pyarrow_dataset(tmp_path: Path, make_event: Callable[..., Event]) -> None:
    populate(tmp_path, "parquet", make_event)
    check(open_dataset(str(tmp_path)).to_pyarrow_dataset().to_table().to_pylist())


@pytest.mark.parametrize("codec", ["parquet", "jsonl"])
def test_duckdb(tmp_path: Path, make_event: Callable[..., Event], codec: str) -> None:
    duckdb = pytest.importorskip("duckdb")
    populate(tmp_path, codec, make_event)
    base = f"{tmp_path}/datasets/quarry/events"
    if codec == "parquet":
        sql = (
            f"SELECT * FROM read_parquet('{base}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
        )
    else:
        sql = f"SELECT * FROM read_json('{base}/**/*.jsonl', hive_partitioning = true, hive_types_autocast = false)"
    rel = duckdb.sql(sql)
    rows = [dict(zip(rel.columns, values, strict=True)) for values in rel.fetchall()]
    check(rows)
