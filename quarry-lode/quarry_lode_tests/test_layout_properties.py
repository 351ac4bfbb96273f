"""Hypothesis: no partition value or sidecar filename can write outside its directory (lode.md §3), checked with
real files on disk, and raw Hive readers decode every stored value back to the original."""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
from hypothesis import given, settings
from hypothesis import strategies as st

from quarry_core.interfaces import RunPartition, StorageConfig
from quarry_lode.backend import LodeBackend
from quarry_lode.dataset import Dataset
from quarry_lode.escaping import MAX_ESCAPED_BYTES, escape
from quarry_lode.layout import PARTITION_KEYS, Partition

KEYS = list(PARTITION_KEYS)
# Everything a script or an operator could pass, with the dangerous characters over-represented.
VALUES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list("./\\%=:?*\"'<>|#^[]{}\x00\x1f\x7f é-_")), max_size=12),
    st.sampled_from([".", "..", "../..", "/", "a/../../b", "%2F", "%", "=", "x=y/z"]),
)


def _usable(value: str) -> bool:
    return value != "" and len(escape(value).encode()) <= MAX_ESCAPED_BYTES


def _inside(path: str, directory: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), os.path.realpath(directory)]) == os.path.realpath(directory)


@settings(max_examples=60, deadline=None)
@given(source=VALUES, category=VALUES, run_id=VALUES, event_type=VALUES)
def test_partition_values_stay_in_their_partition(source: str, category: str, run_id: str, event_type: str) -> None:
    values = {"source": source, "category": category, "day": "2026-11-25", "run_id": run_id, "event_type": event_type}
    partition = Partition(**values)
    with tempfile.TemporaryDirectory() as root:
        ds = Dataset.open(root)
        row = {
            "record_kind": "event",
            "contract_version": "1.0.0",
            "event_id": "e1",
            "seq": 1,
            "type": "item",
            "ts": datetime(2026, 11, 25, tzinfo=UTC),
            "payload": "{}",
            "attempt": 1,
            "policy": "strict",
        }
        if not all(_usable(values[k]) for k in ("source", "category", "run_id", "event_type")):
            try:
                ds.write({("events", partition): [row]}, metadata={})
            except ValueError:
                assert not list(Path(root).rglob("*.parquet"))  # rejected before anything was written
                return
            raise AssertionError(f"unusable values were accepted: {values!r}")
        ds.write({("events", partition): [row]}, metadata={})
        table_dir = os.path.join(root, "datasets", "quarry", "events")
        (written,) = [str(p) for p in Path(root).rglob("*.parquet")]
        assert _inside(written, table_dir)
        relative = os.path.relpath(written, table_dir).split(os.sep)
        assert len(relative) == len(KEYS) + 1  # exactly one directory level per key
        for key, segment in zip(KEYS, relative, strict=False):
            assert segment == f"{key}={escape(values[key])}"
        table = pads.dataset(
            table_dir,
            format="parquet",
            partitioning=pads.partitioning(pa.schema([(k, pa.string()) for k in KEYS]), flavor="hive"),
        ).to_table()
        assert {k: table.column(k)[0].as_py() for k in KEYS} == values


@settings(max_examples=60, deadline=None)
@given(filename=VALUES)
def test_sidecar_filenames_stay_in_the_run_directory(filename: str) -> None:
    with tempfile.TemporaryDirectory() as root:
        backend = LodeBackend(StorageConfig(path=root))
        rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", "../r1"))
        run_dir = os.path.join(
            root, "datasets", "quarry", "files", "source=shop%2Feu", "category=default", "day=2026-11-25",
            "run_id=..%2Fr1",
        )  # fmt: skip
        if not _usable(filename):
            try:
                asyncio.run(rs.put_file(filename, "text/plain", b"x"))
            except ValueError:
                assert not Path(root, "datasets").exists()
                return
            raise AssertionError(f"unusable filename was accepted: {filename!r}")
        stored = asyncio.run(rs.put_file(filename, "text/plain", b"payload"))
        files = sorted(str(p) for p in Path(root).rglob("*") if p.is_file())
        assert len(files) == 2  # the file and its companion, nothing else anywhere
        for path in files:
            assert os.path.dirname(path) == run_dir
        assert os.path.join(root, stored.key) in files
        assert Path(root, stored.key).read_bytes() == b"payload"
        assert stored.filename == filename
