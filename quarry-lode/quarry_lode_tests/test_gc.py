"""Orphan clean-up (quarry_lode.gc): only uncommitted data files and stale temp files older than the threshold,
nothing touched without apply, committed data never."""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from quarry_lode.codecs import encode_rows
from quarry_lode.dataset import Dataset
from quarry_lode.gc import collect_garbage
from quarry_lode.layout import Partition
from quarry_lode.reader import open_dataset

DAY = 24 * 3600.0
PART = Partition("shop/eu", "default", "2026-11-25", "r1", "item")


def row(seq: int) -> dict[str, Any]:
    return {
        "record_kind": "event",
        "contract_version": "1.0.0",
        "event_id": f"e{seq}",
        "seq": seq,
        "type": "item",
        "ts": datetime(2026, 11, 25, tzinfo=UTC),
        "payload": "{}",
        "attempt": 1,
        "policy": "strict",
    }


def snapshot_id_at(epoch: float) -> str:
    return f"{int(epoch * 1e9):020d}-{secrets.token_hex(4)}"


def leftover(ds: Dataset, sid: str, table: str = "events", mtime: float | None = None) -> Path:
    """What a writer that died between its data files and its manifest leaves behind (lode.md §5 step 3)."""
    part = PART if table == "events" else Partition(PART.source, PART.category, PART.day, PART.run_id, "artifact")
    path = ds.layout.path(ds.layout.data_relpath(table, part, sid, "parquet"))
    rows = [row(9)] if table == "events" else [_chunk()]
    ds.store.put(path, encode_rows(table, rows, "parquet", "zstd"))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return Path(path)


def _chunk() -> dict[str, Any]:
    return {
        "record_kind": "artifact_chunk",
        "artifact_id": "a1",
        "seq": 1,
        "is_last": False,
        "offset": 0,
        "length": 3,
        "data": b"abc",
        "checksum": "900150983cd24fb0d6963f7d28e17f72",
        "checksum_algo": "md5",
    }


def tree(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Dataset, dict[str, Path]]:
    ds = Dataset.open(str(tmp_path))
    committed = ds.write({("events", PART): [row(1), row(2)]}, metadata={"run_id": "r1"})
    assert committed is not None
    now = time.time()
    files = {
        "old_events": leftover(ds, snapshot_id_at(now - 3 * DAY), mtime=now - 3 * DAY),
        "old_chunks": leftover(ds, snapshot_id_at(now - 2 * DAY), "chunks", mtime=now - 2 * DAY),
        "young": leftover(ds, snapshot_id_at(now - 60)),
        "old_id_fresh_mtime": leftover(ds, snapshot_id_at(now - 5 * DAY)),  # e.g. a retry still writing it
    }
    temp = Path(ds.layout.base) / "_snapshots" / "2026-11-25" / f".x.json.{secrets.token_hex(6)}.tmp"
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"{")
    os.utime(temp, (now - 2 * DAY, now - 2 * DAY))
    files["temp"] = temp
    return ds, files


def test_dry_run_lists_and_touches_nothing(tmp_path: Path, populated: tuple[Dataset, dict[str, Path]]) -> None:
    ds, files = populated
    before = tree(tmp_path)
    report = collect_garbage(open_dataset(str(tmp_path)), older_than=DAY)
    assert tree(tmp_path) == before
    base = Path(ds.layout.base)
    assert sorted(c.path for c in report.candidates) == sorted(
        str(files[k].relative_to(base)) for k in ("old_events", "old_chunks", "temp")
    )
    by_reason = {c.reason for c in report.candidates}
    assert by_reason == {"uncommitted", "temp"}
    assert report.skipped_recent == 2
    assert report.deleted == () and not report.applied
    assert report.candidate_bytes == sum(files[k].stat().st_size for k in ("old_events", "old_chunks", "temp"))
    assert all(c.age_seconds > DAY for c in report.candidates)
    assert {c.table for c in report.candidates} == {"events", "chunks", None}


def test_apply_deletes_only_the_candidates(tmp_path: Path, populated: tuple[Dataset, dict[str, Path]]) -> None:
    _, files = populated
    reader = open_dataset(str(tmp_path))
    committed_rows = reader.read("events").to_pylist()
    raw_before = reader.read("events", committed_only=False).num_rows
    report = collect_garbage(open_dataset(str(tmp_path)), older_than=DAY, apply=True)
    assert len(report.deleted) == 3
    for key in ("old_events", "old_chunks", "temp"):
        assert not files[key].exists()
    for key in ("young", "old_id_fresh_mtime"):
        assert files[key].exists()
    after = open_dataset(str(tmp_path))
    assert after.read("events").to_pylist() == committed_rows
    assert after.read("events", committed_only=False).num_rows == raw_before - 1
    assert collect_garbage(after, older_than=DAY).candidates == ()


def test_zero_threshold_takes_every_uncommitted_file(
    tmp_path: Path, populated: tuple[Dataset, dict[str, Path]]
) -> None:
    ds, _ = populated
    report = collect_garbage(open_dataset(str(tmp_path)), older_than=0, apply=True, now=time.time() + 1)
    assert len(report.deleted) == 5
    assert open_dataset(str(tmp_path)).read("events").num_rows == 2  # committed rows untouched
    assert sorted(p.name for p in Path(ds.layout.base, "_snapshots").rglob("*.json"))  # manifests kept
    assert Path(ds.layout.pointer_path).exists()


def test_memory_store(memory_url: str) -> None:
    ds = Dataset.open(memory_url)
    ds.write({("events", PART): [row(1)]}, metadata={})
    ds.store.put(ds.layout.path(ds.layout.data_relpath("events", PART, snapshot_id_at(1e9), "parquet")), b"x")
    assert collect_garbage(open_dataset(memory_url), older_than=DAY).candidates == ()  # just created: too young
    report = collect_garbage(open_dataset(memory_url), older_than=DAY, apply=True, now=time.time() + 2 * DAY)
    assert [c.reason for c in report.candidates] == ["uncommitted"]
    assert len(report.deleted) == 1
    assert open_dataset(memory_url).read("events", committed_only=False).num_rows == 1


def test_negative_threshold_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        collect_garbage(open_dataset(str(tmp_path)), older_than=-1)


def test_missing_dataset_is_empty(tmp_path: Path) -> None:
    report = collect_garbage(open_dataset(str(tmp_path / "nothing")), older_than=0)
    assert report.candidates == () and report.to_dict()["candidate_count"] == 0


def test_a_late_commit_keeps_its_files(tmp_path: Path) -> None:
    """A writer that commits between the scan and the deletion (its manifest appears) keeps its data files."""
    from quarry_lode.reader import LodeDataset

    writer = Dataset.open(str(tmp_path))
    sid = snapshot_id_at(time.time() - 3 * DAY)
    path = leftover(writer, sid, mtime=time.time() - 3 * DAY)
    calls: list[str] = []

    class CommitsDuringGc(LodeDataset):
        def is_committed(self, snapshot_id: str) -> bool:
            answer = super().is_committed(snapshot_id)
            calls.append(snapshot_id)
            if len(calls) == 1:  # after the scan saw it uncommitted, the writer finishes its commit
                writer.write({("events", PART): [row(9)]}, metadata={}, snapshot_id=snapshot_id)
            return answer

    reader = open_dataset(str(tmp_path))
    report = collect_garbage(CommitsDuringGc(reader.fs, reader.root), older_than=DAY, apply=True)
    assert calls == [sid, sid]
    assert report.deleted == () and report.candidates == ()
    assert report.skipped_committed == 1
    assert path.exists()
    assert open_dataset(str(tmp_path)).read("events").num_rows == 1
