"""Create-only writes and the latest-pointer compare-and-swap, per filesystem (lode.md §6).

A :class:`PointerStore` knows how to do three things atomically (or as well as its backend can) on one
fsspec filesystem: write a data file (``put``), create an object only if it is absent (``create_only``:
manifests, sidecars) and advance ``D/_latest`` monotonically (``advance``).

=========  =============================================  ===============================================
Backend    Create-only                                    Pointer
=========  =============================================  ===============================================
file       temp file, fsync, ``os.link`` (exists = lost)  ``flock(_latest.lock)`` 10 s, compare, replace
s3         ``PutObject(IfNoneMatch="*")``; 412 = exists   ETag read, ``IfMatch`` / ``IfNoneMatch="*"``
memory     under a process-wide lock                      compare-and-set under that lock
others     existence check, then write                    read-compare-write, not atomic (warns once)
=========  =============================================  ===============================================

Other backends plug in with :func:`register_pointer_store`; ``s3`` is registered that way at import
(:mod:`quarry_lode.s3`, loaded on first use so s3fs is only imported for S3 roots).
"""

from __future__ import annotations

import abc
import atexit
import errno
import fcntl
import os
import random
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, BinaryIO, Literal, Protocol

import attrs
from loguru import logger

from quarry_lode.errors import classify
from quarry_lode.snapshot import is_snapshot_id

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "AdvanceResult",
    "GenericPointerStore",
    "LocalPointerStore",
    "MemoryPointerStore",
    "PointerAdvancer",
    "PointerStore",
    "PointerStoreFactory",
    "flush_all_pointers",
    "fs_protocol",
    "pointer_store_for",
    "register_pointer_store",
]

MAX_RETRIES = 3
BACKOFF_BASE = 0.010
BACKOFF_CAP = 2.0
LOCK_TIMEOUT = 10.0
_MAX_KNOWN_DIRS = 4096

CasOutcome = Literal["advanced", "not_newer", "conflict"]


@attrs.frozen
class AdvanceResult:
    """What :meth:`PointerStore.advance` did: ``advanced`` (we moved it), ``current`` (its value when we
    stopped), ``retries`` (conflicts retried, each counted in ``lode_write_retry_total``), ``exhausted``."""

    advanced: bool
    current: str | None
    retries: int = 0
    exhausted: bool = False


class PointerStore(Protocol):
    """Atomic primitives of one filesystem; paths are in the filesystem's own form."""

    protocol: str
    atomic: bool

    def put(self, path: str, data: bytes) -> None:
        """Write (or replace) a data file durably."""
        ...

    def create_only(self, path: str, data: bytes | BinaryIO) -> bool:
        """Create ``path`` with ``data`` unless it exists; ``False`` if it already existed."""
        ...

    def read_pointer(self, path: str) -> str | None:
        """The snapshot id in the pointer file, ``None`` if absent or unreadable as an id."""
        ...

    def advance(self, path: str, snapshot_id: str) -> AdvanceResult:
        """Set the pointer to ``snapshot_id`` unless it already names an equal or newer id."""
        ...


PointerStoreFactory = Callable[["AbstractFileSystem"], PointerStore]


def fs_protocol(fs: AbstractFileSystem) -> str:
    """The primary protocol name of an fsspec filesystem (``file`` for local disks)."""
    proto = fs.protocol
    name = proto[0] if isinstance(proto, (tuple, list)) else proto
    return "file" if name in ("file", "local") else str(name)


def _parse_pointer(raw: bytes) -> str | None:
    text = raw.decode("utf-8", errors="replace").strip()
    return text if is_snapshot_id(text) else None


class _CasStore(abc.ABC):
    """The retry loop shared by every store: full-jitter backoff, 10 ms base, 2 s cap, 3 retries."""

    protocol: str = "?"

    @abc.abstractmethod
    def _cas_once(self, path: str, snapshot_id: str) -> tuple[CasOutcome, str | None]:
        """One read-compare-write of the pointer: the outcome and the pointer's value seen."""

    def advance(self, path: str, snapshot_id: str) -> AdvanceResult:
        retries = 0
        current: str | None = None
        for attempt in range(MAX_RETRIES + 1):
            outcome, current = self._cas_once(path, snapshot_id)
            if outcome == "advanced":
                return AdvanceResult(True, snapshot_id, retries)
            if outcome == "not_newer":
                return AdvanceResult(False, current, retries)
            if attempt == MAX_RETRIES:
                break
            retries += 1
            time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
        logger.warning(
            "Warning: latest pointer of {} not advanced to {} after {} retries (concurrent writers)",
            path,
            snapshot_id,
            retries,
        )
        return AdvanceResult(False, current, retries, exhausted=True)


#: ``PointerAdvancer`` callbacks: the retries spent on the advance that covered the commit's id.
PointerCallback = Callable[[int], None]
#: how long an idle advancer thread waits for the next request before it ends
_LINGER = 0.25
#: at most one advance per this many seconds (commits in between are coalesced into the next)
_MIN_INTERVAL = 0.010
_advancers: weakref.WeakSet[PointerAdvancer] = weakref.WeakSet()
_advancers_lock = threading.Lock()


class PointerAdvancer:
    """Advances one dataset's pointer off the commit path (CONTRACT_LODE §5 step 5, deferred).

    A commit is the manifest: once it exists the snapshot is committed and readers find it by listing, so the
    advisory pointer need not move before ``commit`` returns. :meth:`request` hands the id to one worker
    thread, which runs the store's compare-and-swap (:meth:`PointerStore.advance`) for the **newest** id
    requested so far, at most once per 10 ms: ids requested while an advance is in flight or due are coalesced
    into the next one (the pointer is monotonic, so moving it to the newest id is what advancing it to each in
    turn would end with).
    :meth:`flush` waits until every requested id is covered; every live advancer is flushed at interpreter exit.
    Failures are warnings, as in the synchronous protocol. Retries are summed in :attr:`retries` and passed to
    the callbacks of the commits an advance covered: all of them to the last one requested, 0 to the others.
    """

    def __init__(self, store: PointerStore, path: str, *, display: str | None = None) -> None:
        self.store = store
        self.path = path
        self.display = display if display is not None else path
        self.retries = 0
        self._cond = threading.Condition()
        self._pending: str | None = None
        self._callbacks: list[PointerCallback] = []
        self._latest: str | None = None  # newest id requested
        self._covered: str | None = None  # newest id an advance finished for (advanced or not)
        self._worker: threading.Thread | None = None
        self._urgent = False  # a flush is waiting: advance now
        with _advancers_lock:
            _advancers.add(self)

    @property
    def latest(self) -> str | None:
        """The newest snapshot id requested (committed by this process), whether or not the pointer names it."""
        return self._latest

    def request(self, snapshot_id: str, callback: PointerCallback | None = None) -> None:
        """Advance the pointer to ``snapshot_id`` (or a newer id) soon, in the background."""
        with self._cond:
            if self._latest is None or snapshot_id > self._latest:
                self._latest = snapshot_id
            if self._pending is None or snapshot_id > self._pending:
                self._pending = snapshot_id
            if callback is not None:
                self._callbacks.append(callback)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="lode-pointer", daemon=True)
                self._worker.start()
            else:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every id requested so far is covered by a finished advance; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._latest
            self._urgent = True
            self._cond.notify_all()
            while target is not None and (self._covered is None or self._covered < target):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        last = -_MIN_INTERVAL
        while True:
            with self._cond:
                if self._pending is None:
                    self._cond.wait(_LINGER)
                if self._pending is None:
                    self._worker = None
                    return
                # at most one advance per interval: commits made meanwhile share the next one (a flush skips this)
                wait = last + _MIN_INTERVAL - time.monotonic()
                if wait > 0 and not self._urgent:
                    self._cond.wait(wait)
                    continue
                sid, callbacks = self._pending, self._callbacks
                self._pending, self._callbacks, self._urgent = None, [], False
            retries = 0
            try:
                retries = self.store.advance(self.path, sid).retries
            except Exception as exc:
                logger.warning(
                    "Warning: latest pointer not advanced to {}: {}",
                    sid,
                    classify(exc, "write", self.display, precondition="conflict"),
                )
            last = time.monotonic()
            with self._cond:
                self.retries += retries
                if self._covered is None or sid > self._covered:
                    self._covered = sid
                self._cond.notify_all()
            for i, callback in enumerate(callbacks):
                try:
                    callback(retries if i == len(callbacks) - 1 else 0)
                except Exception as exc:  # a callback only counts; never let it stop the worker
                    logger.debug("pointer callback failed: {}", exc)


def flush_all_pointers(timeout: float = 15.0) -> None:
    """Flush every live :class:`PointerAdvancer` (called at interpreter exit; the pointer lock waits 10 s)."""
    with _advancers_lock:
        advancers = list(_advancers)
    deadline = time.monotonic() + timeout
    for advancer in advancers:
        advancer.flush(max(0.0, deadline - time.monotonic()))


atexit.register(flush_all_pointers)


def _copy(data: bytes | BinaryIO, out: IO[bytes]) -> None:
    if isinstance(data, (bytes, bytearray, memoryview)):
        out.write(data)
    else:
        shutil.copyfileobj(data, out, 1024 * 1024)


class LocalPointerStore(_CasStore):
    """Local disks: fsync'ed temp files, ``os.link`` for create-only, ``flock`` for the pointer."""

    protocol = "file"
    atomic = True

    def __init__(self, fs: AbstractFileSystem | None = None) -> None:
        self._fs = fs
        # directories this store created or found: a commit writes into the same few, so ``makedirs`` (a stat
        # per path level) runs once each; one removed behind our back is created again (see ``_open_temp``)
        self._dirs: set[str] = set()

    @staticmethod
    def _temp_for(path: str) -> str:
        head, _, tail = path.rpartition("/")
        return f"{head}/.{tail}.{secrets.token_hex(6)}.tmp"

    def _ensure_dir(self, directory: str, *, again: bool = False) -> None:
        if again or directory not in self._dirs:
            os.makedirs(directory, exist_ok=True)
            if len(self._dirs) >= _MAX_KNOWN_DIRS:  # a long-lived process writing many runs: start over
                self._dirs.clear()
            self._dirs.add(directory)

    def _open_temp(self, path: str) -> tuple[str, IO[bytes]]:
        directory = os.path.dirname(path)
        self._ensure_dir(directory)
        tmp = self._temp_for(path)
        try:
            return tmp, open(tmp, "xb")
        except FileNotFoundError:  # the directory went away since we made it
            self._ensure_dir(directory, again=True)
            return tmp, open(tmp, "xb")

    def _open_lock(self, lock_path: str) -> IO[bytes]:
        directory = os.path.dirname(lock_path)
        self._ensure_dir(directory)
        try:
            return open(lock_path, "ab")
        except FileNotFoundError:
            self._ensure_dir(directory, again=True)
            return open(lock_path, "ab")

    def _write_temp(self, path: str, data: bytes | BinaryIO) -> str:
        tmp, out = self._open_temp(path)
        try:
            with out:
                _copy(data, out)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return tmp

    def put(self, path: str, data: bytes) -> None:
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def create_only(self, path: str, data: bytes | BinaryIO) -> bool:
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            _unlink_quietly(tmp)
        return True

    def read_pointer(self, path: str) -> str | None:
        try:
            with open(path, "rb") as f:
                return _parse_pointer(f.read())
        except FileNotFoundError:
            return None

    def _cas_once(self, path: str, snapshot_id: str) -> tuple[CasOutcome, str | None]:
        lock_path = f"{path}.lock"
        with self._open_lock(lock_path) as lock:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        return "conflict", self.read_pointer(path)
                    time.sleep(0.005)
            try:
                current = self.read_pointer(path)
                if current is not None and current >= snapshot_id:
                    return "not_newer", current
                self.put(path, f"{snapshot_id}\n".encode())
                return "advanced", snapshot_id
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


#: One lock for every in-memory filesystem of the process (``memory://`` is process-global too).
_MEMORY_LOCK = threading.RLock()


class MemoryPointerStore(_CasStore):
    """``memory://``: everything under one process-wide lock."""

    protocol = "memory"
    atomic = True

    def __init__(self, fs: AbstractFileSystem) -> None:
        self._fs = fs

    def put(self, path: str, data: bytes) -> None:
        with _MEMORY_LOCK:
            self._fs.pipe_file(path, data)

    def create_only(self, path: str, data: bytes | BinaryIO) -> bool:
        payload = data if isinstance(data, bytes) else bytes(data.read())
        with _MEMORY_LOCK:
            if self._fs.exists(path):
                return False
            self._fs.pipe_file(path, payload)
            return True

    def read_pointer(self, path: str) -> str | None:
        with _MEMORY_LOCK:
            try:
                return _parse_pointer(self._fs.cat_file(path))
            except FileNotFoundError:
                return None

    def _cas_once(self, path: str, snapshot_id: str) -> tuple[CasOutcome, str | None]:
        with _MEMORY_LOCK:
            current = self.read_pointer(path)
            if current is not None and current >= snapshot_id:
                return "not_newer", current
            self._fs.pipe_file(path, f"{snapshot_id}\n".encode())
            return "advanced", snapshot_id


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_not_atomic(protocol: str) -> None:
    with _warned_lock:
        if protocol in _warned:
            return
        _warned.add(protocol)
    logger.warning(
        "Warning: storage backend {} does not support conditional writes; latest pointer updates are not atomic",
        protocol,
    )


class GenericPointerStore(_CasStore):
    """Any other fsspec filesystem: existence check then write; read-compare-write. Not atomic."""

    atomic = False

    def __init__(self, fs: AbstractFileSystem) -> None:
        self._fs = fs
        self.protocol = fs_protocol(fs)

    def put(self, path: str, data: bytes) -> None:
        self._fs.pipe_file(path, data)

    def create_only(self, path: str, data: bytes | BinaryIO) -> bool:
        _warn_not_atomic(self.protocol)
        if self._fs.exists(path):
            return False
        if isinstance(data, bytes):
            self._fs.pipe_file(path, data)
        else:
            with self._fs.open(path, "wb") as out:
                _copy(data, out)
        return True

    def read_pointer(self, path: str) -> str | None:
        try:
            return _parse_pointer(self._fs.cat_file(path))
        except FileNotFoundError:
            return None

    def _cas_once(self, path: str, snapshot_id: str) -> tuple[CasOutcome, str | None]:
        _warn_not_atomic(self.protocol)
        current = self.read_pointer(path)
        if current is not None and current >= snapshot_id:
            return "not_newer", current
        self._fs.pipe_file(path, f"{snapshot_id}\n".encode())
        return "advanced", snapshot_id


_FACTORIES: dict[str, PointerStoreFactory] = {
    "file": LocalPointerStore,
    "memory": MemoryPointerStore,
}
_FACTORIES_LOCK = threading.Lock()


def _s3_store(fs: AbstractFileSystem) -> PointerStore:
    from quarry_lode.s3 import make_s3_store

    return make_s3_store(fs)


def register_pointer_store(protocol: str, factory: PointerStoreFactory) -> None:
    """Use ``factory(fs) -> PointerStore`` for filesystems whose primary protocol is ``protocol``.

    A later registration for the same protocol replaces the earlier one.
    """
    with _FACTORIES_LOCK:
        _FACTORIES["file" if protocol == "local" else protocol] = factory


register_pointer_store("s3", _s3_store)


def pointer_store_for(fs: AbstractFileSystem, *, conditional_writes: bool = True) -> PointerStore:
    """The store for ``fs``: a registered one, else :class:`GenericPointerStore`.

    ``conditional_writes=False`` (storage option) forces the generic, non-atomic store for remote
    backends; local disks and memory are always atomic.
    """
    protocol = fs_protocol(fs)
    with _FACTORIES_LOCK:
        factory = _FACTORIES.get(protocol)
    if factory is None or (not conditional_writes and protocol not in ("file", "memory")):
        return GenericPointerStore(fs)
    return factory(fs)
