"""Proxy state stores (proxy.md §7): where each pool's selection state lives between selections.

A store applies ``fn(state) -> (result, new_state | None)`` atomically (``update``) and returns ``result``;
``new_state`` ``None`` (a peek) writes nothing. ``state`` is the decoded JSON value, ``None`` when nothing is
stored, ``{}`` when the stored bytes are not JSON. No password is ever stored.

- :class:`MemoryStateStore`: a lock per process; the state dies with it.
- :class:`FileStateStore` (default): ``<dir>/<pool>.json`` guarded by ``fcntl.flock`` on ``<dir>/<pool>.lock``;
  shared by every process on the host. Not for network filesystems.
- ``RedisStateStore`` (:mod:`quarry_core.proxy.redis_store`, ``quarry-core[redis]``): shared across machines.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio.to_thread
import attrs

from quarry_core.proxy.errors import ProxyStateStoreError
from quarry_core.proxy.model import ProxyPool

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "LOCK_TIMEOUT_S",
    "FileStateStore",
    "MemoryStateStore",
    "ProxyStateStore",
    "StateStoreConfig",
    "create_state_store",
    "default_state_path",
]

R = TypeVar("R")
UpdateFn = Callable[[Any], tuple[R, "dict[str, Any] | None"]]

#: Default Redis key prefix: a pool's state lives under ``<prefix>:<pool>``.
DEFAULT_KEY_PREFIX = "quarry:proxy"
#: How long the file store waits for a pool's lock.
LOCK_TIMEOUT_S = 10.0


@attrs.frozen
class StateStoreConfig:
    """``proxy.state_store``: ``type`` (``file``, ``memory``, ``redis`` or a plugin), ``path`` (file), ``url``
    and ``key_prefix`` (redis)."""

    type: str = "file"
    path: str | None = None
    url: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX


@runtime_checkable
class ProxyStateStore(Protocol):
    """Registered through ``quarry_proxy_state_stores``; ``factory(StateStoreConfig) -> ProxyStateStore``.

    ``label`` names the store in read-side output (``inspect proxy`` → ``state_store``). Errors raise
    :class:`~quarry_core.proxy.errors.ProxyStateStoreError` with a message naming the store.
    """

    label: str

    async def update(self, pool: ProxyPool, fn: Callable[[Any], tuple[R, dict[str, Any] | None]]) -> R:
        """Read the pool's state, apply ``fn`` and write its new state, all atomically; return the result."""
        ...

    async def read(self, pool: ProxyPool) -> Any:
        """The pool's stored state (``None`` when there is none), without locking or writing anything."""
        ...


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/quarry/proxy``, else ``~/.local/state/quarry/proxy``."""
    base = os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base else Path.home() / ".local" / "state"
    return root / "quarry" / "proxy"


def _decode(data: str | bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}


def _encode(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


class MemoryStateStore:
    """In-process state behind one lock: selection state dies with the process."""

    label = "memory"

    def __init__(self, config: StateStoreConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}

    async def update(self, pool: ProxyPool, fn: Callable[[Any], tuple[R, dict[str, Any] | None]]) -> R:
        """Apply ``fn`` under the process lock (``fn`` is synchronous, so the lock is never held across awaits)."""
        with self._lock:
            result, new_state = fn(_decode(self._data.get(pool.name)))
            if new_state is not None:
                self._data[pool.name] = _encode(new_state)
        return result

    async def read(self, pool: ProxyPool) -> Any:
        """The stored state or ``None``."""
        with self._lock:
            return _decode(self._data.get(pool.name))

    def __repr__(self) -> str:
        return "MemoryStateStore()"


class FileStateStore:
    """One JSON file per pool, updated under an exclusive ``flock`` and replaced atomically."""

    label = "file"

    def __init__(self, config: StateStoreConfig | None = None, *, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else (config.path if config is not None else None)
        self.path = Path(chosen).expanduser() if chosen else default_state_path()
        self.lock_timeout = LOCK_TIMEOUT_S

    def __repr__(self) -> str:
        return f"FileStateStore(path={str(self.path)!r})"

    def _fail(self, what: str, exc: OSError) -> ProxyStateStoreError:
        return ProxyStateStoreError(f"file state store {self.path}: {what}: {exc.strerror or exc}")

    def _ensure_dir(self) -> None:
        try:
            existed = self.path.is_dir()
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not existed:
                os.chmod(self.path, 0o700)
        except OSError as exc:
            raise self._fail("cannot create the state directory", exc) from exc

    def _acquire(self, fd: int, lock_path: Path) -> None:
        import fcntl

        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise self._fail(f"cannot lock {lock_path.name}", exc) from exc
            if time.monotonic() >= deadline:
                raise ProxyStateStoreError(
                    f"file state store {self.path}: timed out after {self.lock_timeout:g} s "
                    f"waiting for {lock_path.name}"
                )
            time.sleep(0.005)

    def _write(self, target: Path, state: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(_encode(state))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _update_sync(self, name: str, fn: Callable[[Any], tuple[R, dict[str, Any] | None]]) -> R:
        self._ensure_dir()
        lock_path = self.path / f"{name}.lock"
        target = self.path / f"{name}.json"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._fail(f"cannot open {lock_path.name}", exc) from exc
        try:
            self._acquire(fd, lock_path)
            try:
                raw = target.read_bytes()
            except FileNotFoundError:
                raw = None
            except OSError as exc:
                raise self._fail(f"cannot read {target.name}", exc) from exc
            result, new_state = fn(_decode(raw))
            if new_state is not None:
                try:
                    self._write(target, new_state)
                except OSError as exc:
                    raise self._fail(f"cannot write {target.name}", exc) from exc
            return result
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    async def update(self, pool: ProxyPool, fn: Callable[[Any], tuple[R, dict[str, Any] | None]]) -> R:
        """Lock ``<pool>.lock`` (waiting up to 10 s), read ``<pool>.json``, apply ``fn``, write a temp file,
        fsync and ``os.replace`` it. Runs in a worker thread."""
        return await anyio.to_thread.run_sync(self._update_sync, pool.name, fn)

    def _read_sync(self, name: str) -> Any:
        try:
            return _decode((self.path / f"{name}.json").read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(f"cannot read {name}.json", exc) from exc

    async def read(self, pool: ProxyPool) -> Any:
        """The stored state (replacements are atomic, so no lock is taken and nothing is created)."""
        return await anyio.to_thread.run_sync(self._read_sync, pool.name)


def create_state_store(config: StateStoreConfig) -> ProxyStateStore:
    """A built-in store from its config (``memory``, ``file``, ``redis``); plugins go through the host."""
    if config.type == "memory":
        return MemoryStateStore(config)
    if config.type == "file":
        return FileStateStore(config)
    if config.type == "redis":
        from quarry_core.proxy.redis_store import RedisStateStore

        return RedisStateStore.from_config(config)
    raise ProxyStateStoreError(f'unknown proxy state store "{config.type}"')
