from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from quarry_lode.dataset import Dataset
from quarry_lode.layout import Layout, Partition
from quarry_lode.pointer import LocalPointerStore
from quarry_lode.reader import open_dataset
from quarry_lode.snapshot import new_snapshot_id

PART = Partition("shop/eu", "default", "2026-11-25", "r1", "item")


def rows(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "record_kind": "event",
            "event_id": f"e{i}",
            "seq": i,
            "type": "item",
            "ts": datetime(2026, 11, 25, 10, 0, i % 60, tzinfo=UTC),
            "payload": "{}",
            "attempt": 1,
            "policy": "strict",
        }
        for i in range(start, start + n)
    ]


def all_files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_nothing_to_write(tmp_path: Path) -> None:
    ds = Dataset.open(str(tmp_path))
    assert ds.write({}, metadata={}) is None
    assert ds.write({("events", PART): []}, metadata={}) is None
    assert not (tmp_path / "datasets").exists()


def test_commit_writes_data_manifest_pointer(tmp_path: Path) -> None:
    ds = Dataset.open(str(tmp_path))
    first = ds.write({("events", PART): rows(2)}, metadata={"run_id": "r1"})
    second = ds.write({("events", PART): rows(1, 3)}, metadata={"run_id": "r1"})
    assert first is not None and second is not None and first < second
    base = tmp_path / "datasets" / "quarry"
    assert (base / "_latest").read_text() == f"{second}\n"
    manifest = json.loads(next(base.glob(f"_snapshots/*/{second}.json")).read_text())
    assert manifest["schema_name"] == "lode-manifest"
    assert manifest["format_version"] == "1.0.0"
    assert manifest["dataset_id"] == "quarry"
    assert manifest["parent_snapshot_id"] == first
    assert manifest["codec"] == "parquet" and manifest["compressor"] == "zstd"
    assert manifest["partitioner"] == "hive"
    assert manifest["partition_keys"] == ["source", "category", "day", "run_id", "event_type"]
    assert manifest["row_count"] == 1
    assert manifest["metadata"] == {"run_id": "r1"}
    assert manifest["min_timestamp"] == "2026-11-25T10:00:03.000Z"
    created = manifest["created_at"]
    assert created.endswith("Z") and len(created.split(".")[1]) == 7  # microseconds
    (f,) = manifest["files"]
    assert f["partition"] == {
        "source": "shop/eu",
        "category": "default",
        "day": "2026-11-25",
        "run_id": "r1",
        "event_type": "item",
    }
    assert (base / f["path"]).stat().st_size == f["size_bytes"]
    assert f["path"].startswith("events/source=shop%2Feu/")


def test_idempotent_retry_writes_nothing(tmp_path: Path) -> None:
    ds = Dataset.open(str(tmp_path))
    sid = new_snapshot_id()
    assert ds.write({("events", PART): rows(3)}, metadata={}, snapshot_id=sid) == sid
    before = all_files(tmp_path)
    result = ds.commit({("events", PART): rows(3)}, metadata={}, snapshot_id=sid)
    assert result is not None and result.snapshot_id == sid and not result.created
    assert all_files(tmp_path) == before
    assert open_dataset(str(tmp_path)).read().num_rows == 3


def test_uncommitted_leftovers_are_ignored_then_replaced(tmp_path: Path) -> None:
    ds = Dataset.open(str(tmp_path))
    committed = ds.write({("events", PART): rows(2)}, metadata={})
    sid = new_snapshot_id()
    # an attempt that died after writing its data file: no manifest
    leftover = tmp_path / "datasets/quarry" / ds.layout.data_relpath("events", PART, sid, "parquet")
    from quarry_lode.codecs import encode_rows

    leftover.write_bytes(encode_rows("events", rows(5, 100), "parquet", "zstd"))
    reader = open_dataset(str(tmp_path))
    assert reader.read().column("seq").to_pylist() == [1, 2]
    assert reader.read(committed_only=False).num_rows == 7
    # the retry with the same id replaces the leftover and commits
    assert ds.write({("events", PART): rows(1, 3)}, metadata={}, snapshot_id=sid) == sid
    assert open_dataset(str(tmp_path)).read().column("seq").to_pylist() == [1, 2, 3]
    assert committed is not None


class _CommitsConcurrently(LocalPointerStore):
    """A real local store that behaves as if another attempt committed ``manifest`` while we wrote data."""

    def __init__(self, manifest: Path) -> None:
        super().__init__()
        self.manifest = manifest

    def put(self, path: str, data: bytes) -> None:
        super().put(path, data)
        self.manifest.parent.mkdir(parents=True, exist_ok=True)
        self.manifest.write_text('{"schema_name": "lode-manifest"}')


def test_manifest_already_exists_is_success(tmp_path: Path) -> None:
    import fsspec

    sid = new_snapshot_id()
    fs, root = fsspec.core.url_to_fs(str(tmp_path))
    manifest = Path(Layout(root).manifest_path(sid))
    ds = Dataset(fs, root, store=_CommitsConcurrently(manifest))
    result = ds.commit({("events", PART): rows(1)}, metadata={}, snapshot_id=sid)
    assert result is not None and result.snapshot_id == sid and result.created is False
    assert manifest.read_text() == '{"schema_name": "lode-manifest"}'  # not overwritten
    assert not (tmp_path / "datasets/quarry/_latest").exists()  # the earlier attempt owns the pointer


@pytest.mark.parametrize("deferred", [False, True], ids=["sync", "deferred"])
def test_pointer_failure_is_only_a_warning(tmp_path: Path, deferred: bool) -> None:
    from fsspec.implementations.local import LocalFileSystem

    ds = Dataset(LocalFileSystem(), str(tmp_path), defer_pointer=deferred)
    (tmp_path / "datasets/quarry/_latest").mkdir(parents=True)  # cannot be replaced by a file
    messages: list[str] = []
    logger.enable("quarry_lode")
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    try:
        sid = ds.write({("events", PART): rows(1)}, metadata={})
        assert ds.flush_pointer(10)  # a deferred advance has run (and failed) once this returns
    finally:
        logger.remove(sink)
        logger.disable("quarry_lode")
    assert sid is not None
    assert open_dataset(str(tmp_path)).read().num_rows == 1
    assert any(m.startswith(f"Warning: latest pointer not advanced to {sid}") and "_latest" in m for m in messages)


def test_invalid_snapshot_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a snapshot id"):
        Dataset.open(str(tmp_path)).write({("events", PART): rows(1)}, metadata={}, snapshot_id="abc")


def test_threads_commit_concurrently(tmp_path: Path) -> None:
    ds = Dataset.open(str(tmp_path))
    ids: list[str] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        for i in range(5):
            sid = ds.write({("events", PART): rows(1, k * 100 + i)}, metadata={})
            assert sid is not None
            with lock:
                ids.append(sid)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = open_dataset(str(tmp_path))
    assert [m.snapshot_id for m in reader.snapshots()] == sorted(ids, reverse=True)  # newest first
    assert reader.latest_snapshot_id() == max(ids)
    assert reader.read().num_rows == 30


def _process_worker(root: str, k: int, n: int, queue: Any) -> None:
    ds = Dataset.open(root)
    for i in range(n):
        part = Partition("s", "c", "2026-11-25", f"run-{k}", "item")
        queue.put(ds.write({("events", part): rows(1, i + 1)}, metadata={"run_id": f"run-{k}"}))


def test_processes_commit_concurrently(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(str(tmp_path), k, 8, queue)) for k in range(4)]
    for p in procs:
        p.start()
    ids = [queue.get(timeout=60) for _ in range(32)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    reader = open_dataset(str(tmp_path))
    assert sorted(m.snapshot_id for m in reader.snapshots()) == sorted(ids)
    assert (tmp_path / "datasets/quarry/_latest").read_text() == f"{max(ids)}\n"
    assert reader.read().num_rows == 32
    for k in range(4):
        assert reader.read(run_id=f"run-{k}").column("seq").to_pylist() == list(range(1, 9))
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []
    assert os.listdir(tmp_path / "datasets/quarry/_snapshots")


class SlowCountingStore(LocalPointerStore):
    """A local store whose pointer advances take 30 ms and are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.advances: list[str] = []

    def advance(self, path: str, snapshot_id: str) -> Any:
        self.advances.append(snapshot_id)
        time.sleep(0.03)
        return super().advance(path, snapshot_id)


def test_deferred_pointer_coalesces_and_flush_waits(tmp_path: Path) -> None:
    from fsspec.implementations.local import LocalFileSystem

    store = SlowCountingStore()
    ds = Dataset(LocalFileSystem(), str(tmp_path), store=store, defer_pointer=True)
    ids = []
    for i in range(1, 21):
        result = ds.commit({("events", PART): rows(1, start=i)}, metadata={})
        assert result is not None and result.created and not result.pointer_advanced
        ids.append(result.snapshot_id)
    # every commit is visible at once through the listing, whatever the pointer says
    assert [m.snapshot_id for m in open_dataset(str(tmp_path)).snapshots()] == ids[::-1]
    assert ds.flush_pointer(10)
    assert Path(ds.layout.pointer_path).read_text().strip() == ids[-1]
    # commits made while an advance was in flight were coalesced into the next one, in order
    assert 1 <= len(store.advances) < len(ids)
    assert store.advances == sorted(store.advances) and store.advances[-1] == ids[-1]
    # the parent is our own previous commit even while the pointer lags behind it
    parents = [ds_manifest(ds, sid)["parent_snapshot_id"] for sid in ids]
    assert parents == [None, *ids[:-1]]


def ds_manifest(ds: Dataset, sid: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(ds.layout.manifest_path(sid)).read_text())
    return loaded


def test_deferred_pointer_is_advanced_at_interpreter_exit(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from fsspec.implementations.local import LocalFileSystem\n"
        "from quarry_lode.dataset import Dataset\n"
        "from quarry_lode.pointer import LocalPointerStore\n"
        "import time\n"
        "class Slow(LocalPointerStore):\n"
        "    def advance(self, path, sid):\n"
        "        time.sleep(0.2)\n"
        "        return super().advance(path, sid)\n"
        "ds = Dataset(LocalFileSystem(), sys.argv[1], store=Slow(), defer_pointer=True)\n"
        "from quarry_lode.layout import Partition\n"
        "from datetime import datetime, UTC\n"
        "part = Partition('s', 'c', '2026-11-25', 'r1', 'item')\n"
        "row = {'record_kind': 'event', 'event_id': 'e1', 'seq': 1, 'type': 'item',\n"
        "       'ts': datetime(2026, 11, 25, tzinfo=UTC), 'payload': '{}', 'attempt': 1, 'policy': 'strict'}\n"
        "print(ds.write({('events', part): [row]}, metadata={}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    sid = proc.stdout.strip()
    assert (tmp_path / "datasets/quarry/_latest").read_text().strip() == sid
