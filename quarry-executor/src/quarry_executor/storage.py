"""``ctx.storage.put`` (runtime.md §15): sidecar files outside the event stream, acknowledged by the runtime.

Files up to 8 MiB travel as one ``file_write`` frame, larger ones as ``file_write_chunk`` frames (wire.md §7).
Frames go out under the run's lock (so chunks of different writes never interleave and everything keeps the
script's call order); the ack is awaited outside it, so puts pipeline.
"""

from __future__ import annotations

from typing import Any

from quarry_core.errors import EmitValidationError, StorageFilenameError, StoragePutError, StorageSizeError
from quarry_core.protocol import MAX_CHUNK_SIZE, MAX_FILE_WRITE_SIZE, MAX_SIDECAR_SIZE, FileWriteAck, encode_frame
from quarry_core.sdk import StoragePutResult
from quarry_executor.emit import RunStream

__all__ = ["Storage", "check_filename"]

_MAX_FILENAME_BYTES = 255


def check_filename(filename: object) -> str:
    """Return ``filename`` if it is a legal sidecar name, else raise :class:`StorageFilenameError`.

    Rules: non-empty, at most 255 UTF-8 bytes, no ``/``, ``\\``, NUL or control characters, no ``..``, not
    ``.``, not ending in ``.meta.json``.
    """
    if not isinstance(filename, str):
        raise StorageFilenameError(f"filename must be a string, got {type(filename).__name__}")
    if not filename:
        raise StorageFilenameError("filename must not be empty")
    try:
        size = len(filename.encode("utf-8"))
    except UnicodeEncodeError:
        raise StorageFilenameError(f"filename is not valid UTF-8: {filename!r}") from None
    if size > _MAX_FILENAME_BYTES:
        raise StorageFilenameError(f"filename is {size} bytes long; the limit is {_MAX_FILENAME_BYTES} UTF-8 bytes")
    if "/" in filename or "\\" in filename:
        raise StorageFilenameError(f"filename must not contain path separators: {filename!r}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in filename):
        raise StorageFilenameError(f"filename must not contain NUL or control characters: {filename!r}")
    if filename == ".":
        raise StorageFilenameError('filename must not be "."')
    if ".." in filename:
        raise StorageFilenameError(f'filename must not contain "..": {filename!r}')
    if filename.endswith(".meta.json"):
        raise StorageFilenameError(f'filename must not end in ".meta.json" (reserved): {filename!r}')
    return filename


class Storage:
    """Implements :class:`quarry_core.sdk.StorageAPI` on a :class:`~quarry_executor.emit.RunStream`."""

    def __init__(self, stream: RunStream) -> None:
        self._stream = stream

    async def put(self, filename: str, data: bytes, content_type: str = "application/octet-stream") -> StoragePutResult:
        stream = self._stream
        if stream.terminal is not None:
            stream.check_open()
        check_filename(filename)
        if not isinstance(content_type, str) or not content_type:
            raise EmitValidationError("content_type must be a non-empty string")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StorageSizeError(f"data must be bytes-like, got {type(data).__name__}")
        view = memoryview(data).cast("B")
        size = view.nbytes
        if size > MAX_SIDECAR_SIZE:
            raise StorageSizeError(f"data of {size} bytes exceeds the limit of {MAX_SIDECAR_SIZE}")
        channel = stream.channel
        async with stream.lock:
            stream.check_open()
            write_id = channel.next_write_id()
            ack = channel.expect_ack(write_id)
            try:
                await self._send(write_id, filename, content_type, view)
            except BaseException:
                channel.forget_ack(write_id)
                raise
        channel.check_replies_possible()
        reply: FileWriteAck = await ack
        if not reply.ok:
            raise StoragePutError(
                reply.error or f"storage.put of {filename!r} was rejected", reply.error_kind or "rejected"
            )
        return StoragePutResult(key=reply.key or "")

    async def _send(self, write_id: int, filename: str, content_type: str, view: memoryview) -> None:
        stream = self._stream
        size = view.nbytes
        if size <= MAX_FILE_WRITE_SIZE:
            await stream.write_frame(
                encode_frame(
                    {
                        "type": "file_write",
                        "write_id": write_id,
                        "filename": filename,
                        "content_type": content_type,
                        "data": bytes(view),
                    }
                )
            )
        else:
            seq = 0
            offset = 0
            while offset < size:
                piece = bytes(view[offset : offset + MAX_CHUNK_SIZE])
                offset += len(piece)
                seq += 1
                frame: dict[str, Any] = {
                    "type": "file_write_chunk",
                    "write_id": write_id,
                    "filename": filename,
                    "content_type": content_type,
                    "seq": seq,
                    "is_last": offset >= size,
                    "data": piece,
                }
                await stream.write_frame(encode_frame(frame))
