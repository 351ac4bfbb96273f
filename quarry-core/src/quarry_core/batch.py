"""Batchers for scripts (runtime.md §17): group many ``enqueue`` items into few events, and run many
``storage.put`` calls with bounded concurrency and fail-fast semantics.

::

    from quarry_core import create_batcher, create_storage_batcher

    async def run(ctx):
        links = create_batcher(ctx.emit, size=50, target="detail.py")
        for url in urls:
            await links.add({"url": url})      # one enqueue{params: {"items": [...50]}} per 50 items
        await links.flush()                    # the rest

        files = create_storage_batcher(ctx.storage, concurrency=8)
        for name, body in pages:
            files.add(name, body, content_type="text/html")   # a Future[StoragePutResult]
        await files.flush()                    # waits for every put; raises the first failure
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import anyio
import attrs

from quarry_core.sdk import EmitAPI, StorageAPI, StoragePutResult

__all__ = ["EnqueueBatcher", "StorageBatcher", "create_batcher", "create_storage_batcher"]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


class EnqueueBatcher:
    """Collects items and sends them as one ``enqueue{target, params: {"items": [...]}}`` per ``size`` items.

    ``add`` flushes when ``size`` items are pending; ``flush`` sends what is pending (a no-op when nothing is).
    A failed send keeps its items pending, so a later ``flush`` can retry; after the terminal event flushing raises
    :class:`~quarry_core.errors.TerminalEventError` while ``add`` below ``size`` still buffers.
    """

    def __init__(
        self, emit: EmitAPI, *, size: int, target: str, source: str | None = None, category: str | None = None
    ) -> None:
        self._emit = emit
        self.size = _positive_int("size", size)
        self.target = target
        self.source = source
        self.category = category
        self._items: list[Any] = []
        self._lock = anyio.Lock()

    @property
    def pending(self) -> int:
        """Items added but not yet sent."""
        return len(self._items)

    async def add(self, item: Any) -> None:
        """Buffer ``item``; send a batch once ``size`` items are pending."""
        self._items.append(item)
        if len(self._items) >= self.size:
            await self._send(self.size)

    async def flush(self) -> None:
        """Send every pending item (in batches of at most ``size``)."""
        while self._items:
            await self._send(self.size)

    async def _send(self, limit: int) -> None:
        async with self._lock:
            if not self._items:
                return
            batch = self._items[:limit]
            del self._items[: len(batch)]
            try:
                await self._emit.enqueue(
                    self.target, params={"items": batch}, source=self.source, category=self.category
                )
            except BaseException:
                self._items[:0] = batch  # keep them for a retry, in order
                raise


@attrs.define
class _Put:
    filename: str
    data: bytes
    content_type: str
    future: asyncio.Future[StoragePutResult]


class StorageBatcher:
    """Runs ``storage.put`` calls with at most ``concurrency`` in flight.

    ``add`` returns an ``asyncio.Future[StoragePutResult]``. The first failure fails its future and every queued
    (not yet started) one; later ``add`` calls return failed futures. ``flush`` waits for the puts in flight and
    raises the first error; after a successful flush the batcher can be reused, after a failure it stays failed.
    """

    def __init__(self, storage: StorageAPI, *, concurrency: int = 16) -> None:
        self._storage = storage
        self.concurrency = _positive_int("concurrency", concurrency)
        self._queue: collections.deque[_Put] = collections.deque()
        self._running: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self._added = 0
        self._settled = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Puts added but not yet settled (queued or in flight)."""
        return self._added - self._settled

    @property
    def failed(self) -> BaseException | None:
        """The first error, if any put failed."""
        return self._error

    def add(
        self, filename: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> asyncio.Future[StoragePutResult]:
        """Queue one put; it starts as soon as fewer than ``concurrency`` are in flight."""
        future: asyncio.Future[StoragePutResult] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._added += 1
        if self._error is not None:
            self._settle(future, error=self._error)
            return future
        self._queue.append(_Put(filename, data, content_type, future))
        self._idle.clear()
        self._start()
        return future

    async def flush(self) -> None:
        """Wait until every put has settled; raise the first error."""
        await self._idle.wait()
        if self._error is not None:
            raise self._error

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue and len(self._running) < self.concurrency:
            put = self._queue.popleft()
            task = loop.create_task(self._put(put))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _put(self, put: _Put) -> None:
        try:
            result = await self._storage.put(put.filename, put.data, content_type=put.content_type)
        except asyncio.CancelledError:
            self._settle(put.future, error=asyncio.CancelledError())
            self._fail(asyncio.CancelledError())
            raise
        except Exception as exc:
            self._settle(put.future, error=exc)
            self._fail(exc)
        else:
            self._settle(put.future, result=result)
        finally:
            self._running.discard(asyncio.current_task())  # type: ignore[arg-type]
            if self._error is None:
                self._start()
            if not self._running and not self._queue:
                self._idle.set()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        while self._queue:
            self._settle(self._queue.popleft().future, error=self._error)

    def _settle(
        self,
        future: asyncio.Future[StoragePutResult],
        *,
        result: StoragePutResult | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._settled += 1
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failed future's exception as retrieved: ``flush`` reports it, asyncio need not."""
    if not future.cancelled():
        future.exception()


def create_batcher(
    emit: EmitAPI, *, size: int, target: str, source: str | None = None, category: str | None = None
) -> EnqueueBatcher:
    """An :class:`EnqueueBatcher` sending ``enqueue`` events of ``size`` items to ``target``."""
    return EnqueueBatcher(emit, size=size, target=target, source=source, category=category)


def create_storage_batcher(storage: StorageAPI, *, concurrency: int = 16) -> StorageBatcher:
    """A :class:`StorageBatcher` with at most ``concurrency`` puts in flight."""
    return StorageBatcher(storage, concurrency=concurrency)
