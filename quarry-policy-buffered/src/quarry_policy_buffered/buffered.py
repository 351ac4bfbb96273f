"""The ``buffered`` ingestion policy (policies.md §5).

Items wait in one arrival-ordered queue. One writer task takes *everything waiting* as a batch whenever
``batch_events`` events or ``batch_bytes`` bytes wait, when an ingest call needs room, and at ``flush()``;
a batch is written chunks first, then events, and batch k + 1 is formed only after batch k committed, so
newcomers never join a batch under retry.

Occupancy (waiting + in flight) is bounded by ``buffer_events`` (events) and ``buffer_bytes`` (events and
chunks; without it chunks are bounded by 128 MiB). At a limit: a droppable event is dropped
(``buffer_full``); anything else first evicts the oldest *waiting* droppable events
(``evicted_for_non_droppable``), then waits for the writer (backpressure). When the writer gives up the
policy is failed: every later call raises :class:`~quarry_core.errors.PolicyError`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from quarry_core.errors import PolicyError
from quarry_core.interfaces import PolicyConfig, PolicyContext, PolicyStats, Sink
from quarry_core.protocol.codec import event_size as _event_size
from quarry_core.protocol.constants import DROPPABLE_EVENT_TYPES
from quarry_core.snapshot_ids import new_snapshot_id
from quarry_policy_buffered.batches import Batch, BatchFailed, Counters, summarize_drops, write_batch
from quarry_policy_buffered.settings import CHUNK_BYTE_CAP, FLUSH_TRIGGERS, BufferedSettings

if TYPE_CHECKING:
    import loguru

    from quarry_core.protocol.frames import ArtifactChunk, Event

__all__ = ["BufferedPolicy", "event_size"]

Sleep = Callable[[float], Awaitable[Any]]

_WAITING = 0
_IN_FLIGHT = 1
_EVICTED = 2


def event_size(event: Event) -> int:
    """Bytes an event occupies in a buffer: the length of its CBOR frame payload (policies.md §5.2).

    An event read from a frame carries that length (``Event.wire_size``); only one built in memory is encoded.
    """
    return _event_size(event)


class _Entry:
    __slots__ = ("etype", "item", "size", "state")

    def __init__(self, item: Event | ArtifactChunk, size: int, etype: str | None) -> None:
        self.item = item
        self.size = size
        self.etype = etype  # None for a chunk
        self.state = _WAITING


def _default_logger() -> loguru.Logger:
    from loguru import logger

    return logger


class BufferedPolicy:
    """``BufferedPolicy(config, sink, context)`` is the plugin factory; ``sleep``, ``snapshot_ids`` and
    ``chunk_byte_cap`` are keyword-only test seams."""

    name = "buffered"

    def __init__(
        self,
        config: PolicyConfig,
        sink: Sink,
        context: PolicyContext | None = None,
        *,
        sleep: Sleep | None = None,
        snapshot_ids: Callable[[], str] | None = None,
        chunk_byte_cap: int = CHUNK_BYTE_CAP,
    ) -> None:
        self.settings = settings = BufferedSettings.from_config(config)
        self._sink = sink
        self._log: loguru.Logger = context.logger if context is not None else _default_logger()
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self._new_id = snapshot_ids if snapshot_ids is not None else new_snapshot_id
        self._limit_events = settings.buffer_events
        self._limit_bytes = settings.buffer_bytes
        self._batch_events = settings.batch_events
        self._batch_bytes = settings.batch_bytes
        self._chunk_cap = chunk_byte_cap
        self._counters = Counters()
        # waiting items, in arrival order (evicted entries are skipped when a batch is formed)
        self._waiting: deque[_Entry] = deque()
        self._droppable: deque[_Entry] = deque()  # waiting droppable events, oldest first
        self._w_items = 0
        self._w_events = 0
        self._w_bytes = 0
        self._w_chunk_bytes = 0
        # the batch being written
        self._f_items = 0
        self._f_events = 0
        self._f_bytes = 0
        self._f_chunk_bytes = 0
        self._inflight: Batch | None = None
        self._wake = asyncio.Event()
        self._batch_done = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._failure: str | None = None
        self._flush_called = False
        self._closed = False
        self._warned_backpressure = False
        self._burst: dict[tuple[str, str], int] = {}
        # flush firings by trigger; ``interval`` stays 0 (buffered has no timer), the keys match streaming's
        self._triggers = dict.fromkeys(FLUSH_TRIGGERS, 0)  # drops since the buffer was last relieved

    # ------------------------------------------------------------------ ingestion

    async def ingest_event(self, event: Event) -> None:
        await self.ingest_events((event,))

    async def ingest_events(self, events: Sequence[Event]) -> None:
        """Events that arrived together (CONTRACT_POLICY §1): exactly ``ingest_event`` for each in order (drops,
        backpressure and batch starts at the same events), without a coroutine per event. When one fails, the
        events after it are received and unflushed, as the runtime handed them over."""
        counters = self._counters
        for i, event in enumerate(events):
            etype = event.type
            counters.receive(etype)
            if self._failure is not None or self._closed:
                counters.reject(etype)
                self._counters.refuse(events[i + 1 :])
                raise self._refusal()
            size = _event_size(event)
            if not self._fits_event(size):
                if etype in DROPPABLE_EVENT_TYPES:
                    self._drop(event, "buffer_full", was_held=False)
                    continue
                try:
                    await self._make_room(size, chunk=False)
                except BaseException:
                    counters.reject(etype)
                    self._counters.refuse(events[i + 1 :])
                    raise
            counters.hold(etype)
            entry = _Entry(event, size, etype)
            self._waiting.append(entry)
            if etype in DROPPABLE_EVENT_TYPES:
                self._droppable.append(entry)
            self._w_items += 1
            self._w_events += 1
            self._w_bytes += size
            counters.mark(self._w_events + self._f_events, self._w_bytes + self._f_bytes)
            if self._threshold_reached() and self._start_batch("count"):
                await asyncio.sleep(0)  # let the writer start the sink call while ingestion goes on

    async def ingest_chunk(self, chunk: ArtifactChunk) -> None:
        self._counters.chunks_received += 1
        if self._failure is not None or self._closed:
            raise self._refusal()
        size = len(chunk.data)
        if not self._fits_chunk(size):
            await self._make_room(size, chunk=True)
        self._waiting.append(_Entry(chunk, size, None))
        self._w_items += 1
        self._w_bytes += size
        self._w_chunk_bytes += size
        self._counters.mark(self._w_events + self._f_events, self._w_bytes + self._f_bytes)
        if self._threshold_reached() and self._start_batch("count"):
            await asyncio.sleep(0)

    def _threshold_reached(self) -> bool:
        return bool(
            (self._batch_events and self._w_events >= self._batch_events)
            or (self._batch_bytes and self._w_bytes >= self._batch_bytes)
        )

    # ------------------------------------------------------------------ pressure

    def _empty(self) -> bool:
        return self._w_items == 0 and self._f_items == 0

    def _fits_event(self, size: int) -> bool:
        if self._limit_events and self._w_events + self._f_events + 1 > self._limit_events:
            return self._empty()
        if self._limit_bytes and self._w_bytes + self._f_bytes + size > self._limit_bytes:
            return self._empty()
        return True

    def _fits_chunk(self, size: int) -> bool:
        if self._limit_bytes:
            fits = self._w_bytes + self._f_bytes + size <= self._limit_bytes
        else:
            fits = self._w_chunk_bytes + self._f_chunk_bytes + size <= self._chunk_cap
        return fits or self._empty()

    def _fits(self, size: int, chunk: bool) -> bool:
        return self._fits_chunk(size) if chunk else self._fits_event(size)

    async def _make_room(self, size: int, *, chunk: bool) -> None:
        """Evict waiting droppable events, then wait for the writer, until the item fits (rules 3 and 4)."""
        while True:
            while not self._fits(size, chunk) and self._evict_one():
                pass
            if self._fits(size, chunk):
                return
            if self._failure is not None:
                raise self._refusal()
            if not self._warned_backpressure:
                self._warned_backpressure = True
                self._log.warning("Warning: buffered policy: buffer full, applying backpressure")
            done = self._batch_done
            if self._inflight is None:
                self._start_batch("capacity")  # below a threshold but out of room: write what waits
            await done.wait()

    def _evict_one(self) -> bool:
        droppable = self._droppable
        while droppable:
            entry = droppable.popleft()
            if entry.state != _WAITING:
                continue
            entry.state = _EVICTED
            self._w_items -= 1
            self._w_events -= 1
            self._w_bytes -= entry.size
            self._drop(entry.item, "evicted_for_non_droppable", was_held=True)  # type: ignore[arg-type]
            return True
        return False

    def _drop(self, event: Event, reason: str, *, was_held: bool) -> None:
        before = self._counters.drop(event.type, reason, was_held=was_held)
        key = (event.type, reason)
        self._burst[key] = self._burst.get(key, 0) + 1
        if before == 0:
            self._log.warning("Warning: buffered policy dropped {} event (seq {}): {}", event.type, event.seq, reason)
        else:
            self._log.debug("buffered policy dropped {} event (seq {}): {}", event.type, event.seq, reason)

    def _end_burst(self) -> None:
        """Log one warning for the drops since the buffer was last relieved (a drop burst), if any."""
        if not self._burst:
            return
        burst, self._burst = self._burst, {}
        self._log.warning("Warning: buffered policy: drop burst ended: {}", summarize_drops(burst))

    def _refusal(self) -> PolicyError:
        if self._failure is not None:
            return PolicyError(self._failure)
        return PolicyError("buffered policy is closed")

    # ------------------------------------------------------------------ the writer

    def _start_batch(self, trigger: str | None) -> bool:
        """Form a batch of everything waiting and hand it to the writer, if the writer is idle.

        Synchronous, so the batch is fixed the moment it is formed: newcomers wait for the next one. A batch
        that ``trigger`` (``count``: a batch threshold, ``capacity``: an ingest call out of room) starts is one
        flush firing; batches ``flush()`` starts are counted by that call (``trigger`` None).
        """
        if self._inflight is not None or self._failure is not None or self._closed or not self._w_items:
            return False
        if trigger is not None:
            self._counters.flush_count += 1
            self._triggers[trigger] += 1
        chunks: list[ArtifactChunk] = []
        events: list[Event] = []
        for entry in self._waiting:
            if entry.state != _WAITING:
                continue
            entry.state = _IN_FLIGHT
            if entry.etype is None:
                chunks.append(entry.item)  # type: ignore[arg-type]
            else:
                events.append(entry.item)  # type: ignore[arg-type]
        self._waiting.clear()
        self._droppable.clear()
        self._f_items, self._w_items = self._w_items, 0
        self._f_events, self._w_events = self._w_events, 0
        self._f_bytes, self._w_bytes = self._w_bytes, 0
        self._f_chunk_bytes, self._w_chunk_bytes = self._w_chunk_bytes, 0
        self._inflight = Batch(chunks, events)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._run_writer(), name="quarry-buffered-writer")
        self._wake.set()
        return True

    async def _run_writer(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch = self._inflight
                if batch is not None:
                    await self._write(batch)
                    if self._threshold_reached():
                        self._start_batch("count")
        except Exception as exc:  # a bug, not a sink failure: fail loudly instead of hanging waiters
            self._counters.errors += 1
            self._failure = f"buffered policy writer crashed: {type(exc).__name__}: {exc}"
            self._log.error("{}", self._failure)
            self._batch_finished()

    async def _write(self, batch: Batch) -> None:
        settings = self.settings
        try:
            await write_batch(
                self._sink,
                batch,
                mode=settings.flush_mode,
                max_retries=settings.max_flush_retries,
                sleep=self._sleep,
                new_id=self._new_id,
                on_failure=self._on_attempt_failed,
                on_chunks_committed=self._on_chunks_committed,
            )
        except BatchFailed as exc:
            # the policy is failed; the batch stays in flight (held), reported as unflushed
            self._counters.errors += 1
            self._failure = f"buffered flush failed permanently after {exc.retries} retries: {exc.error}"
            self._log.error("{}", self._failure)
            self._batch_finished()
            return
        self._counters.persist(batch.events)
        self._f_items = self._f_events = self._f_bytes = self._f_chunk_bytes = 0
        self._inflight = None
        self._end_burst()  # a commit relieves the pressure that caused the drops
        self._batch_finished()

    def _on_attempt_failed(self, attempt: int, attempts: int, error: Exception) -> None:
        counters = self._counters
        counters.flush_failures += 1
        if attempt < attempts:
            counters.write_retries += 1
        self._log.warning("Warning: buffered flush failed (attempt {}/{}): {}", attempt, attempts, error)

    def _on_chunks_committed(self, batch: Batch) -> None:
        self._counters.chunks_persisted += len(batch.chunks)

    def _batch_finished(self) -> None:
        done, self._batch_done = self._batch_done, asyncio.Event()
        done.set()

    # ------------------------------------------------------------------ lifecycle

    async def flush(self, trigger: str = "termination") -> None:
        """Wait for the writer, then write everything waiting as one batch and wait for it to commit.

        Raises ``PolicyError`` once the policy has failed (also when this flush's batch fails for good).
        """
        self._counters.flush_count += 1
        self._triggers["termination" if trigger not in self._triggers else trigger] += 1
        self._flush_called = True
        if self._closed:
            if self._failure is not None:
                raise self._refusal()
            return
        while self._failure is None and (self._inflight is not None or self._w_items):
            done = self._batch_done
            if self._inflight is None:
                self._start_batch(None)
            await done.wait()
        if self._failure is not None:
            raise self._refusal()

    async def close(self) -> None:
        """Stop the writer and close the sink (idempotent). Without an earlier ``flush()`` whatever is held is
        flushed first, best effort; what stays held is reported as unflushed."""
        if self._closed:
            return
        if not self._flush_called and self._failure is None and (self._w_items or self._inflight is not None):
            try:
                await self.flush("termination")
            except PolicyError as exc:
                self._log.warning("Warning: buffered policy: flush at close failed: {}", exc)
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.wait([writer])
        self._end_burst()
        if self._counters.dropped:
            self._log.warning("Warning: buffered policy: {}", self._counters.drop_summary())
        await self._sink.close()

    def stats(self) -> PolicyStats:
        return self._counters.snapshot(
            buffered_events=self._w_events + self._f_events,
            buffered_bytes=self._w_bytes + self._f_bytes,
            flush_triggers=self._triggers,
        )
