from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from quarry_core.interfaces import RunPartition, SidecarFile
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_lode.backend import LodeBackend
from quarry_lode.errors import PathExistsError
from quarry_lode.reader import open_dataset


def test_put_file_and_companion(backend_factory: Callable[..., LodeBackend], partition: RunPartition) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    sf = asyncio.run(rs.put_file("report.json", "application/json", b'{"ok":true}'))
    assert sf == SidecarFile(
        "report.json",
        "application/json",
        11,
        "datasets/quarry/files/source=shop%2Feu/category=default/day=2026-11-25/run_id=r1/report.json",
    )
    root = Path(b.dataset.root)
    assert (root / sf.key).read_bytes() == b'{"ok":true}'
    meta = json.loads((root / (sf.key + ".meta.json")).read_text())
    assert meta == {
        "content_type": "application/json",
        "size": 11,
        "sha256": hashlib.sha256(b'{"ok":true}').hexdigest(),
    }
    with open_dataset(b.root_url).open_sidecar(sf.key) as f:
        assert f.read() == b'{"ok":true}'


def test_same_name_twice_is_path_exists(backend_factory: Callable[..., LodeBackend], partition: RunPartition) -> None:
    rs = backend_factory().open_run(partition)
    asyncio.run(rs.put_file("a.txt", "text/plain", b"1"))
    with pytest.raises(PathExistsError) as info:
        asyncio.run(rs.put_file("a.txt", "text/plain", b"2"))
    assert info.value.kind == "path_exists"
    assert str(info.value).endswith("/run_id=r1/a.txt: path_exists: path already exists")


def test_stream_input(backend_factory: Callable[..., LodeBackend], partition: RunPartition, memory_url: str) -> None:
    payload = bytes(range(256)) * 5000
    for b in (backend_factory(), backend_factory(path=memory_url)):
        rs = b.open_run(partition)
        sf = asyncio.run(rs.put_file("big.bin", "application/octet-stream", io.BytesIO(payload)))
        assert sf.size == len(payload)
        ds = open_dataset(b.root_url)
        with ds.open_sidecar(sf.key) as f:
            assert f.read() == payload
        with ds.open_sidecar(sf.key + ".meta.json") as f:
            assert json.loads(f.read())["sha256"] == hashlib.sha256(payload).hexdigest()


def test_unsafe_names_stay_in_their_directory(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    sf = asyncio.run(rs.put_file("../x", "text/plain", b"1"))
    assert sf.key.endswith("/run_id=r1/..%2Fx")
    assert (Path(b.dataset.root) / sf.key).exists()


def test_inventory_goes_into_next_non_chunk_snapshot(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: Callable[..., Event]
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    sf = asyncio.run(rs.put_file("a.txt", "text/plain", b"abc"))
    entry = {"key": sf.key, "filename": "a.txt", "content_type": "text/plain", "size": 3}
    asyncio.run(rs.write_chunks([ArtifactChunk(str(uuid.uuid4()), 1, True, b"x")]))
    asyncio.run(rs.write_events([make_event(1)], policy="strict"))
    asyncio.run(rs.write_events([make_event(2)], policy="strict"))
    later, with_events, chunk_only = open_dataset(b.root_url).snapshots()  # newest first
    assert "sidecar_files" not in chunk_only.metadata
    assert with_events.metadata["sidecar_files"] == [entry]
    assert "sidecar_files" not in later.metadata  # cleared after success
    assert rs.pending_sidecars() == []
    # without a final run record the manifests are the inventory
    assert open_dataset(b.root_url).sidecar_files("r1") == [sf]


def test_final_run_record_is_authoritative(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    sf = asyncio.run(rs.put_file("a.txt", "text/plain", b"abc"))
    other = SidecarFile("b.txt", "text/plain", 1, "datasets/quarry/files/x/b.txt")
    asyncio.run(
        rs.write_records(
            {"runs": [{"state": "succeeded", "updated_at": "2026-11-25T10:00:00Z", "sidecar_files": [sf, other]}]}
        )
    )
    assert open_dataset(b.root_url).sidecar_files("r1") == [sf, other]
