"""Sidecar file writes (``file_write`` / ``file_write_chunk``): validated, spooled, stored create-only, acked.

They bypass the policy: a sidecar goes straight to storage and its ack tells the script whether it landed.
A storage failure rejects that one write; only framing violations are stream errors.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from typing import IO

import attrs
from loguru import logger

from quarry_core.errors import StorageError, StreamError
from quarry_core.interfaces import RunStorage, SidecarFile
from quarry_core.protocol.constants import MAX_FILE_WRITE_SIZE, MAX_SIDECAR_SIZE
from quarry_core.protocol.frames import FileWrite, FileWriteAck, FileWriteChunk
from quarry_core.protocol.values import sidecar_filename_error
from quarry_core.runtime.metrics import Collector

__all__ = ["SidecarWriter"]


@attrs.define
class _Pending:
    write_id: int
    filename: str
    content_type: str
    last_seq: int
    size: int
    spool: IO[bytes] | None
    rejected: bool


class SidecarWriter:
    """Handles sidecar frames for one run. ``send_ack`` writes a control frame to the executor."""

    def __init__(
        self,
        storage: RunStorage,
        metrics: Collector,
        send_ack: Callable[[FileWriteAck], Awaitable[None]],
    ) -> None:
        self._storage = storage
        self._metrics = metrics
        self._send_ack = send_ack
        self._last_write_id = 0
        self._pending: _Pending | None = None
        self.files: list[SidecarFile] = []

    def _check_write_id(self, write_id: int, *, continuing: bool) -> None:
        if continuing:
            return
        if self._pending is not None:
            raise StreamError(f"file_write_chunk: write {self._pending.write_id} interleaved with write {write_id}")
        if write_id <= self._last_write_id:
            raise StreamError(f"file write: write_id {write_id} is not increasing (last {self._last_write_id})")
        self._last_write_id = write_id

    async def on_file_write(self, frame: FileWrite, *, terminated: bool) -> None:
        self._check_write_id(frame.write_id, continuing=False)
        if terminated:
            await self._reject(frame.write_id, "run already terminated")
            return
        problem = self._problem(frame.filename, frame.content_type)
        if problem:
            await self._reject(frame.write_id, problem)
            return
        if len(frame.data) > MAX_FILE_WRITE_SIZE:  # pragma: no cover - from_wire already refuses it
            raise StreamError(f"file_write: data exceeds {MAX_FILE_WRITE_SIZE} bytes")
        await self._store(frame.write_id, frame.filename, frame.content_type, frame.data)

    async def on_file_write_chunk(self, frame: FileWriteChunk, *, terminated: bool) -> None:
        p = self._pending
        if p is None or p.write_id != frame.write_id:
            self._check_write_id(frame.write_id, continuing=False)
            if frame.seq != 1:
                raise StreamError(f"file_write_chunk {frame.write_id}: first chunk must have seq 1, got {frame.seq}")
            problem = "run already terminated" if terminated else self._problem(frame.filename, frame.content_type)
            p = self._pending = _Pending(
                frame.write_id, frame.filename, frame.content_type, 0, 0, None, rejected=problem is not None
            )
            if problem:
                await self._reject(frame.write_id, problem)
        else:
            if frame.seq != p.last_seq + 1:
                raise StreamError(
                    f"file_write_chunk {frame.write_id}: sequence violation: expected {p.last_seq + 1}, got {frame.seq}"
                )
            if frame.filename != p.filename or frame.content_type != p.content_type:
                raise StreamError(f"file_write_chunk {frame.write_id}: filename or content type changed")
        p.last_seq = frame.seq
        if not p.rejected:
            if p.size + len(frame.data) > MAX_SIDECAR_SIZE:
                p.rejected = True
                self._close_spool(p)
                await self._reject(frame.write_id, f"file exceeds {MAX_SIDECAR_SIZE} bytes")
            else:
                if p.spool is None:
                    p.spool = tempfile.SpooledTemporaryFile(max_size=MAX_FILE_WRITE_SIZE)  # noqa: SIM115
                p.spool.write(frame.data)
                p.size += len(frame.data)
        if frame.is_last:
            self._pending = None
            if not p.rejected:
                assert p.spool is not None
                p.spool.seek(0)
                try:
                    await self._store(p.write_id, p.filename, p.content_type, p.spool)
                finally:
                    self._close_spool(p)

    def check_complete(self) -> None:
        """At run end: a chunked write without its last chunk is discarded (no ack can be answered)."""
        if self._pending is not None:
            logger.warning("Warning: sidecar write {} ended without its last chunk; discarded", self._pending.write_id)
            self._close_spool(self._pending)
            self._pending = None

    @staticmethod
    def _close_spool(p: _Pending) -> None:
        if p.spool is not None:
            p.spool.close()
            p.spool = None

    @staticmethod
    def _problem(filename: str, content_type: str) -> str | None:
        err = sidecar_filename_error(filename)
        if err:
            return f"invalid filename: {err}"
        if not content_type:
            return "content_type must not be empty"
        return None

    async def _store(self, write_id: int, filename: str, content_type: str, data: bytes | IO[bytes]) -> None:
        try:
            stored = await self._storage.put_file(filename, content_type, data)  # type: ignore[arg-type]
        except StorageError as exc:
            self._metrics.inc("lode_write_failure_total")
            await self._ack(FileWriteAck(write_id, ok=False, error=str(exc), error_kind=exc.kind))
            return
        except Exception as exc:
            self._metrics.inc("lode_write_failure_total")
            await self._ack(
                FileWriteAck(write_id, ok=False, error=f"{type(exc).__name__}: {exc}", error_kind="unknown")
            )
            return
        self._metrics.inc("lode_write_success_total")
        self.files.append(stored)
        await self._ack(FileWriteAck(write_id, ok=True, key=stored.key))

    async def _reject(self, write_id: int, message: str) -> None:
        await self._ack(FileWriteAck(write_id, ok=False, error=message, error_kind="rejected"))

    async def _ack(self, ack: FileWriteAck) -> None:
        try:
            await self._send_ack(ack)
        except Exception as exc:  # the executor is gone; nothing else to do
            logger.debug("could not deliver file_write_ack {}: {}", ack.write_id, exc)
