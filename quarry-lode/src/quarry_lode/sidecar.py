"""Sidecar files (``ctx.storage.put``, lode.md §8): create-only objects outside snapshots.

``D/files/source=…/category=…/day=…/run_id=…/e(filename)`` holds the bytes and ``….meta.json`` the
companion ``{"content_type", "size", "sha256"}``. Each put is also queued in a pending inventory that the
run's next snapshot with events, metrics or run records writes as ``metadata.sidecar_files``.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from quarry_core.interfaces import RunPartition, SidecarFile
from quarry_lode.errors import PathExistsError, classify

if TYPE_CHECKING:
    from quarry_lode.dataset import Dataset

__all__ = [
    "META_SUFFIX",
    "SidecarWriter",
]

META_SUFFIX = ".meta.json"


class _HashingReader(io.RawIOBase):
    """Wraps a binary stream, hashing and counting what is read through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data:
            self.sha256.update(data)
            self.size += len(data)
        return bytes(data or b"")

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class SidecarWriter:
    """Writes one run's sidecar files and keeps its pending inventory (thread-safe)."""

    def __init__(self, dataset: Dataset, partition: RunPartition) -> None:
        self._dataset = dataset
        self._partition = partition
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []

    def key_for(self, filename: str) -> str:
        """The key (path relative to the storage root) ``filename`` gets; ``ValueError`` if unusable."""
        p = self._partition
        return self._dataset.layout.sidecar_key(p.source, p.category, p.day, p.run_id, filename)

    def put(self, filename: str, content_type: str, data: bytes | BinaryIO) -> SidecarFile:
        """Create the file and its companion; ``PathExistsError`` if the name was used before in this run."""
        ds = self._dataset
        key = self.key_for(filename)
        path = f"{ds.root.rstrip('/')}/{key}"
        shown = ds.display(path)
        payload: bytes | BinaryIO
        reader: _HashingReader | None = None
        if isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)
            payload, size, digest = raw, len(raw), hashlib.sha256(raw).hexdigest()
        else:
            reader = _HashingReader(data)
            payload = cast(BinaryIO, reader)
            size, digest = 0, ""
        try:
            created = ds.store.create_only(path, payload)
        except Exception as exc:
            raise classify(exc, "write", shown) from exc
        if not created:
            raise PathExistsError("write", shown, "path already exists")
        if reader is not None:
            size, digest = reader.size, reader.sha256.hexdigest()
        meta = json.dumps({"content_type": content_type, "size": size, "sha256": digest}).encode()
        meta_path = path + META_SUFFIX
        try:
            ds.store.put(meta_path, meta)
        except Exception as exc:
            err = classify(exc, "write", ds.display(meta_path))
            try:
                ds.fs.rm_file(path)
            except Exception:
                pass
            raise err from exc
        with self._lock:
            self._pending.append({"key": key, "filename": filename, "content_type": content_type, "size": size})
        return SidecarFile(filename=filename, content_type=content_type, size=size, key=key)

    def pending(self) -> list[dict[str, Any]]:
        """A copy of the inventory not yet written to a snapshot."""
        with self._lock:
            return [dict(e) for e in self._pending]

    def clear(self, entries: list[dict[str, Any]]) -> None:
        """Drop ``entries`` (as returned by :meth:`pending`) after a snapshot recorded them."""
        keys = {e["key"] for e in entries}
        with self._lock:
            self._pending = [e for e in self._pending if e["key"] not in keys]
