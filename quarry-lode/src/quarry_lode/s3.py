"""S3 conditional writes (lode.md §6, §8) through the s3fs filesystem's own aiobotocore client.

=================  ==========================================================================================
Create-only        ``PutObject(IfNoneMatch="*")`` (``CompleteMultipartUpload`` too, for streamed sidecars);
                   412 = the object exists
Pointer            ``GetObject`` for value + ETag, then ``PutObject(IfMatch=etag)``, or
                   ``PutObject(IfNoneMatch="*")`` when absent; 412 / 409 = conflict, retried by the shared loop
501                the service cannot do conditional writes: from then on this store behaves like
                   :class:`~quarry_lode.pointer.GenericPointerStore` (with its one-time warning)
=================  ==========================================================================================

The requests go through the filesystem's client (``fs._call_s3``), so endpoint, region, path-style addressing
and credentials are exactly those of the ``s3fs.S3FileSystem`` the storage options built. s3fs re-raises
botocore errors as ``OSError`` subclasses with the ``ClientError`` as ``__cause__``; codes are read from there.

Registered for protocol ``s3`` in :mod:`quarry_lode.pointer` (lazily: s3fs is imported only when used).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, BinaryIO

from loguru import logger

from quarry_lode.errors import client_error_code
from quarry_lode.pointer import CasOutcome, GenericPointerStore, _CasStore, _copy, _parse_pointer

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "S3PointerStore",
    "is_conflict",
    "is_not_implemented",
]

_CONFLICT_CODES = ("PreconditionFailed", "ConditionalRequestConflict")


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed precondition (412) or a concurrent conditional write (409)."""
    found = client_error_code(exc)
    if found is None:
        return False
    code, status = found
    return code in _CONFLICT_CODES or status in (409, 412)


def is_not_implemented(exc: BaseException) -> bool:
    """Whether the service answered 501 ``NotImplemented`` (no conditional writes)."""
    found = client_error_code(exc)
    if found is None:
        return False
    code, status = found
    return code == "NotImplemented" or status == 501


async def _get_with_etag(fs: Any, bucket: str, key: str) -> tuple[bytes, str | None]:
    resp = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    body = resp["Body"]
    try:
        data = await body.read()
    finally:
        body.close()
    return bytes(data), resp.get("ETag")


class S3PointerStore(_CasStore):
    """S3 and S3-compatible stores: conditional ``PutObject`` for create-only writes and the pointer."""

    protocol = "s3"

    def __init__(self, fs: AbstractFileSystem) -> None:
        self._fs = fs
        self._generic: GenericPointerStore | None = None
        self._lock = threading.Lock()
        self.atomic = True

    # ------------------------------------------------------------------ fallback

    def _fallback(self, exc: BaseException | None = None) -> GenericPointerStore:
        with self._lock:
            if self._generic is None:
                if exc is not None:
                    logger.debug("conditional write refused with 501, falling back: {}", exc)
                self._generic = GenericPointerStore(self._fs)
                self.atomic = False
            return self._generic

    def _sync(self, func: Any, *args: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self._fs.loop, func, self._fs, *args)

    # ------------------------------------------------------------------ PointerStore

    def put(self, path: str, data: bytes) -> None:
        self._fs.pipe_file(path, data)

    def create_only(self, path: str, data: bytes | BinaryIO) -> bool:
        if self._generic is not None:
            return self._generic.create_only(path, data)
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                self._fs.pipe_file(path, bytes(data), mode="create")
            else:
                # multipart when large; s3fs sends If-None-Match: * on the completing request
                with self._fs.open(path, "xb") as out:
                    _copy(data, out)
        except FileExistsError:
            return False
        except OSError as exc:
            if is_conflict(exc):
                return False
            if is_not_implemented(exc) and isinstance(data, (bytes, bytearray, memoryview)):
                return self._fallback(exc).create_only(path, data)
            if is_not_implemented(exc):
                self._fallback(exc)  # a consumed stream cannot be replayed: this put fails, later ones fall back
            raise
        finally:
            self._fs.invalidate_cache(path)
        return True

    def read_pointer(self, path: str) -> str | None:
        try:
            return _parse_pointer(self._fs.cat_file(path))
        except FileNotFoundError:
            return None

    def _cas_once(self, path: str, snapshot_id: str) -> tuple[CasOutcome, str | None]:
        if self._generic is not None:
            return self._generic._cas_once(path, snapshot_id)
        bucket, key, _ = self._fs.split_path(path)
        etag: str | None
        try:
            raw, etag = self._sync(_get_with_etag, bucket, key)
            current = _parse_pointer(raw)
        except FileNotFoundError:
            etag, current = None, None
        if current is not None and current >= snapshot_id:
            return "not_newer", current
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            self._fs.call_s3("put_object", Bucket=bucket, Key=key, Body=f"{snapshot_id}\n".encode(), **condition)
        except OSError as exc:
            if is_conflict(exc):
                return "conflict", current
            if is_not_implemented(exc):
                return self._fallback(exc)._cas_once(path, snapshot_id)
            raise
        finally:
            self._fs.invalidate_cache(path)
        return "advanced", snapshot_id


def make_s3_store(fs: AbstractFileSystem) -> S3PointerStore:
    """The factory registered for protocol ``s3``."""
    return S3PointerStore(fs)
