from __future__ import annotations

import fcntl
import io
import os
import threading
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from quarry_lode.pointer import (
    GenericPointerStore,
    LocalPointerStore,
    MemoryPointerStore,
    PointerStore,
    pointer_store_for,
    register_pointer_store,
)
from quarry_lode.snapshot import new_snapshot_id


def test_local_create_only(tmp_path: Path) -> None:
    store = LocalPointerStore()
    path = str(tmp_path / "a" / "b.json")
    assert store.create_only(path, b"one") is True
    assert store.create_only(path, io.BytesIO(b"two")) is False
    assert Path(path).read_bytes() == b"one"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.json"]  # temp files cleaned up


def test_local_put_replaces(tmp_path: Path) -> None:
    store = LocalPointerStore()
    path = str(tmp_path / "x" / "part.parquet")
    store.put(path, b"old")
    store.put(path, b"new")
    assert Path(path).read_bytes() == b"new"


def test_local_pointer_is_monotonic(tmp_path: Path) -> None:
    store = LocalPointerStore()
    path = str(tmp_path / "_latest")
    a, b = new_snapshot_id(), new_snapshot_id()
    assert store.read_pointer(path) is None
    assert store.advance(path, b).advanced
    assert Path(path).read_text() == f"{b}\n"
    res = store.advance(path, a)
    assert not res.advanced and res.current == b
    assert store.read_pointer(path) == b
    assert (tmp_path / "_latest.lock").exists()


def test_local_pointer_waits_for_the_lock(tmp_path: Path) -> None:
    store = LocalPointerStore()
    path = str(tmp_path / "_latest")
    sid = new_snapshot_id()
    with open(f"{path}.lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        done = threading.Event()
        t = threading.Thread(target=lambda: (store.advance(path, sid), done.set()))
        t.start()
        assert not done.wait(0.2)  # blocked by our lock
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    t.join(5)
    assert done.is_set()
    assert store.read_pointer(path) == sid


def test_threads_race_to_the_max(tmp_path: Path) -> None:
    store = LocalPointerStore()
    path = str(tmp_path / "_latest")
    ids = [new_snapshot_id() for _ in range(40)]
    threads = [threading.Thread(target=store.advance, args=(path, sid)) for sid in reversed(ids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.read_pointer(path) == max(ids)


def test_memory_store(memory_url: str) -> None:
    fs, root = fsspec.core.url_to_fs(memory_url)
    store = pointer_store_for(fs)
    assert isinstance(store, MemoryPointerStore)
    assert store.create_only(f"{root}/m.json", b"1")
    assert not store.create_only(f"{root}/m.json", b"2")
    a, b = new_snapshot_id(), new_snapshot_id()
    assert store.advance(f"{root}/_latest", b).advanced
    assert not store.advance(f"{root}/_latest", a).advanced
    assert store.read_pointer(f"{root}/_latest") == b


def test_selection_and_registration(tmp_path: Path) -> None:
    assert isinstance(pointer_store_for(LocalFileSystem()), LocalPointerStore)
    # an unregistered protocol falls back to the generic, non-atomic store
    fs = fsspec.filesystem("dir", path=str(tmp_path), fs=LocalFileSystem())
    generic = pointer_store_for(fs)
    assert isinstance(generic, GenericPointerStore)
    assert generic.atomic is False

    class Recording(GenericPointerStore):
        atomic = True

    register_pointer_store("dir", Recording)
    try:
        assert isinstance(pointer_store_for(fs), Recording)
        assert isinstance(pointer_store_for(fs, conditional_writes=False), GenericPointerStore)
        assert not isinstance(pointer_store_for(fs, conditional_writes=False), Recording)
    finally:
        from quarry_lode import pointer

        pointer._FACTORIES.pop("dir", None)


def test_generic_store_warns_once(tmp_path: Path) -> None:
    from loguru import logger

    messages: list[str] = []
    logger.enable("quarry_lode")
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    try:
        from quarry_lode import pointer

        pointer._warned.discard("dir")
        fs = fsspec.filesystem("dir", path=str(tmp_path), fs=LocalFileSystem())
        store: PointerStore = GenericPointerStore(fs)
        assert store.create_only("m.json", b"1")
        assert not store.create_only("m.json", b"1")
        assert store.advance("_latest", new_snapshot_id()).advanced
    finally:
        logger.remove(sink)
        logger.disable("quarry_lode")
    warnings = [m for m in messages if "does not support conditional writes" in m]
    assert warnings == [
        "Warning: storage backend dir does not support conditional writes; latest pointer updates are not atomic\n"
    ]
    assert os.path.exists(tmp_path / "_latest")


def test_unknown_content_reads_as_absent(tmp_path: Path) -> None:
    (tmp_path / "_latest").write_text("garbage\n")
    assert LocalPointerStore().read_pointer(str(tmp_path / "_latest")) is None
    with pytest.raises(IsADirectoryError):
        LocalPointerStore().read_pointer(str(tmp_path))
