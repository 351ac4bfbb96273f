"""Artifact bookkeeping during ingestion (CONTRACT_RUN, runtime rules for chunks and commits).

Every violation raises :class:`~quarry_core.errors.StreamError`; the ingestion loop turns it into the run's
stream error. Orphans (chunks without a commit at run end) are reported, never deleted.
"""

from __future__ import annotations

from typing import Any

import attrs

from quarry_core.errors import StreamError
from quarry_core.protocol.constants import MAX_ARTIFACT_SIZE
from quarry_core.protocol.frames import ArtifactChunk, Event

__all__ = ["ArtifactManager", "ArtifactStats"]


@attrs.frozen
class ArtifactStats:
    total: int = 0
    committed: int = 0
    orphaned: int = 0
    chunks: int = 0
    bytes: int = 0
    orphaned_ids: tuple[str, ...] = ()


@attrs.define
class _Artifact:
    last_seq: int = 0
    complete: bool = False
    size: int = 0
    committed: bool = False


class ArtifactManager:
    """Checks chunk order per artifact and commit events against what arrived."""

    def __init__(self) -> None:
        self._artifacts: dict[str, _Artifact] = {}
        self._chunks = 0
        self._bytes = 0

    def on_chunk(self, chunk: ArtifactChunk) -> None:
        state = self._artifacts.get(chunk.artifact_id)
        if state is None:
            if chunk.seq != 1:
                raise StreamError(f"artifact {chunk.artifact_id}: first chunk must have seq 1, got {chunk.seq}")
            state = self._artifacts[chunk.artifact_id] = _Artifact()
        else:
            if state.committed:
                raise StreamError(f"artifact {chunk.artifact_id}: chunk after commit")
            if state.complete:
                raise StreamError(f"artifact {chunk.artifact_id}: chunk after is_last (seq {chunk.seq})")
            if chunk.seq != state.last_seq + 1:
                raise StreamError(
                    f"artifact {chunk.artifact_id}: chunk sequence violation: expected {state.last_seq + 1}, "
                    f"got {chunk.seq}"
                )
        if state.size + len(chunk.data) > MAX_ARTIFACT_SIZE:
            raise StreamError(f"artifact {chunk.artifact_id}: exceeds {MAX_ARTIFACT_SIZE} bytes")
        state.last_seq = chunk.seq
        state.size += len(chunk.data)
        state.complete = chunk.is_last
        self._chunks += 1
        self._bytes += len(chunk.data)

    def on_commit(self, event: Event) -> None:
        payload: dict[str, Any] = event.payload
        aid = payload["artifact_id"]
        state = self._artifacts.get(aid)
        if state is None:
            raise StreamError(f"artifact {aid}: commit without chunks")
        if state.committed:
            raise StreamError(f"artifact {aid}: committed twice")
        if not state.complete:
            raise StreamError(f"artifact {aid}: commit before its is_last chunk")
        declared = payload["size_bytes"]
        if declared != state.size:
            raise StreamError(f"artifact {aid}: size mismatch: declared {declared}, received {state.size}")
        state.committed = True

    def stats(self) -> ArtifactStats:
        orphans = tuple(sorted(a for a, s in self._artifacts.items() if not s.committed))
        return ArtifactStats(
            total=len(self._artifacts),
            committed=sum(1 for s in self._artifacts.values() if s.committed),
            orphaned=len(orphans),
            chunks=self._chunks,
            bytes=self._bytes,
            orphaned_ids=orphans,
        )
