from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from quarry_core.interfaces import RunPartition
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_lode.backend import LodeBackend
from quarry_lode.errors import ArtifactCorrupt, ArtifactNotFound
from quarry_lode.layout import Partition
from quarry_lode.reader import open_dataset

MakeEvent = Callable[..., Event]
CHUNK_PART = Partition("shop/eu", "default", "2026-11-25", "r1", "artifact")


def commit_event(make_event: MakeEvent, seq: int, aid: str, size: int) -> Event:
    return make_event(seq, "artifact", {"artifact_id": aid, "name": "f.bin", "content_type": "x/y", "size_bytes": size})


def raw_chunk(aid: str, seq: int, offset: int, body: bytes, is_last: bool = False, **over: Any) -> dict[str, Any]:
    row = {
        "record_kind": "artifact_chunk",
        "artifact_id": aid,
        "seq": seq,
        "is_last": is_last,
        "offset": offset,
        "length": len(body),
        "data": body,
        "checksum": hashlib.md5(body).hexdigest(),
        "checksum_algo": "md5",
    }
    row.update(over)
    return row


@pytest.mark.parametrize("codec", ["parquet", "jsonl"])
def test_reassembly_across_batches(
    codec: str, backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    b = backend_factory(codec=codec)
    rs = b.open_run(partition)
    aid = str(uuid.uuid4())
    pieces = [b"alpha-", b"beta-", b"gamma"]
    asyncio.run(rs.write_chunks([ArtifactChunk(aid, 1, False, pieces[0]), ArtifactChunk(aid, 2, False, pieces[1])]))
    asyncio.run(rs.write_chunks([ArtifactChunk(aid, 3, True, pieces[2])]))
    asyncio.run(rs.write_events([commit_event(make_event, 1, aid, 16)], policy="strict"))
    ds = open_dataset(b.root_url)
    assert ds.read_artifact("r1", aid) == b"alpha-beta-gamma"
    with ds.open_artifact("r1", aid) as stream:
        assert stream.read(3) == b"alp"
        assert stream.read() == b"ha-beta-gamma"
    assert ds.orphan_artifacts("r1") == []


def test_identical_duplicates_collapse(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    aid = str(uuid.uuid4())
    asyncio.run(rs.write_chunks([ArtifactChunk(aid, 1, True, b"xyz")]))
    # an at_least_once retry re-sends the chunk phase as a new snapshot
    b.dataset.write({("chunks", CHUNK_PART): [raw_chunk(aid, 1, 0, b"xyz", True)]}, metadata={})
    asyncio.run(rs.write_events([commit_event(make_event, 1, aid, 3)], policy="strict"))
    ds = open_dataset(b.root_url)
    assert ds.read("chunks").num_rows == 2
    assert ds.read_artifact("r1", aid) == b"xyz"


@pytest.mark.parametrize(
    ("chunks", "size", "message"),
    [
        (
            [raw_chunk("A", 1, 0, b"ab"), raw_chunk("A", 1, 0, b"ac")],
            2,
            "chunk 1: duplicate chunks with differing data",
        ),
        ([raw_chunk("A", 1, 0, b"ab"), raw_chunk("A", 3, 2, b"cd", True)], 4, "chunk 2 missing"),
        ([raw_chunk("A", 1, 0, b"ab", True), raw_chunk("A", 2, 2, b"cd", True)], 4, "chunk 1 is_last before"),
        ([raw_chunk("A", 1, 0, b"ab")], 2, "final chunk 1 is not marked is_last"),
        ([raw_chunk("A", 1, 0, b"ab"), raw_chunk("A", 2, 3, b"cd", True)], 4, "chunk 2: offset 3, expected 2"),
        ([raw_chunk("A", 1, 0, b"ab", True, length=2, data=b"abc")], 2, "chunk 1: length 2 but 3 bytes"),
        ([raw_chunk("A", 1, 0, b"ab", True, checksum="0" * 32)], 2, "chunk 1: MD5 mismatch"),
        ([raw_chunk("A", 1, 0, b"ab", True)], 5, "2 bytes in chunks, commit says size_bytes 5"),
    ],
)
def test_corruption_is_detected(
    chunks: list[dict[str, Any]],
    size: int,
    message: str,
    backend_factory: Callable[..., LodeBackend],
    partition: RunPartition,
    make_event: MakeEvent,
) -> None:
    b = backend_factory()
    for row in chunks:  # one snapshot per row, like separate batches
        b.dataset.write({("chunks", CHUNK_PART): [row]}, metadata={})
    rs = b.open_run(partition)
    asyncio.run(rs.write_events([commit_event(make_event, 1, "A", size)], policy="strict"))
    with pytest.raises(ArtifactCorrupt, match=message):
        open_dataset(b.root_url).read_artifact("r1", "A")


def test_not_found_and_orphans(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    orphan, committed = sorted([str(uuid.uuid4()), str(uuid.uuid4())])
    asyncio.run(rs.write_chunks([ArtifactChunk(orphan, 1, True, b"lost"), ArtifactChunk(committed, 1, True, b"ok")]))
    asyncio.run(rs.write_events([commit_event(make_event, 1, committed, 2)], policy="strict"))
    ds = open_dataset(b.root_url)
    assert ds.orphan_artifacts("r1") == [orphan]
    with pytest.raises(ArtifactNotFound):
        ds.read_artifact("r1", orphan)
    assert ds.read_artifact("r1", orphan, include_orphans=True) == b"lost"
    with pytest.raises(ArtifactNotFound):
        ds.read_artifact("r1", str(uuid.uuid4()), include_orphans=True)
    with pytest.raises(ArtifactNotFound):
        ds.read_artifact("other-run", committed)


def test_uncommitted_chunks_are_ignored(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    from quarry_lode.codecs import encode_rows
    from quarry_lode.snapshot import new_snapshot_id

    b = backend_factory()
    rs = b.open_run(partition)
    aid = str(uuid.uuid4())
    asyncio.run(rs.write_chunks([ArtifactChunk(aid, 1, True, b"good")]))
    rel = b.dataset.layout.data_relpath("chunks", CHUNK_PART, new_snapshot_id(), "parquet")
    b.dataset.store.put(
        b.dataset.layout.path(rel), encode_rows("chunks", [raw_chunk(aid, 1, 0, b"evil", True)], "parquet", "zstd")
    )
    asyncio.run(rs.write_events([commit_event(make_event, 1, aid, 4)], policy="strict"))
    assert open_dataset(b.root_url).read_artifact("r1", aid) == b"good"


def test_empty_artifact(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    aid = str(uuid.uuid4())
    asyncio.run(rs.write_chunks([ArtifactChunk(aid, 1, True, b"")]))
    asyncio.run(rs.write_events([commit_event(make_event, 1, aid, 0)], policy="strict"))
    assert open_dataset(b.root_url).read_artifact("r1", aid) == b""
