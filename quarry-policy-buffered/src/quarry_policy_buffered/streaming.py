"""The ``streaming`` ingestion policy (policies.md §6).

Items collect in a buffer that is flushed by four triggers, each counted in ``flush_triggers``:

- ``count``: after an event, when ``flush_count`` events wait (chunks do not count);
- ``capacity``: when the buffer reaches 50 000 items or 128 MiB, or an item would exceed a cap;
- ``interval``: every ``flush_interval`` seconds if the buffer is non-empty (a background task);
- ``termination``: ``flush()``.

``count`` and ``capacity`` flush inside the ingest call. A flush swaps the buffer out under a lock, so ingestion
continues, then writes chunks, then events (``chunks_first`` retries, policies.md §5.5). A failed flush puts its
data back ahead of newer items (only the events when the chunk phase had committed). ``count``, ``capacity``
and ``termination`` failures raise :class:`~quarry_core.errors.PolicyError` after the retry budget; an
``interval`` failure is one attempt, logged, and the data waits for the next trigger. Streaming never drops.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import anyio

from quarry_core.errors import PolicyError
from quarry_core.interfaces import PolicyConfig, PolicyContext, PolicyStats, Sink
from quarry_core.protocol.codec import event_size
from quarry_core.snapshot_ids import new_snapshot_id
from quarry_policy_buffered.batches import Batch, BatchFailed, Counters, add_counts, write_batch
from quarry_policy_buffered.settings import FLUSH_TRIGGERS, STREAMING_BYTE_CAP, STREAMING_ITEM_CAP, StreamingSettings

if TYPE_CHECKING:
    import loguru

    from quarry_core.protocol.frames import ArtifactChunk, Event

__all__ = ["StreamingPolicy"]

Sleep = Callable[[float], Awaitable[Any]]

_TYPE = attrgetter("type")
_WIRE_SIZE = attrgetter("_wire_size")  # the slot behind Event.wire_size (None for an event built in memory)


def _default_logger() -> loguru.Logger:
    from loguru import logger

    return logger


class StreamingPolicy:
    """``StreamingPolicy(config, sink, context)`` is the plugin factory; ``sleep`` (retry backoff),
    ``snapshot_ids``, ``item_cap`` and ``byte_cap`` are keyword-only test seams."""

    name = "streaming"

    def __init__(
        self,
        config: PolicyConfig,
        sink: Sink,
        context: PolicyContext | None = None,
        *,
        sleep: Sleep | None = None,
        snapshot_ids: Callable[[], str] | None = None,
        item_cap: int = STREAMING_ITEM_CAP,
        byte_cap: int = STREAMING_BYTE_CAP,
    ) -> None:
        self.settings = settings = StreamingSettings.from_config(config)
        self._sink = sink
        self._log: loguru.Logger = context.logger if context is not None else _default_logger()
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self._new_id = snapshot_ids if snapshot_ids is not None else new_snapshot_id
        self._flush_at = settings.flush_count
        self._interval = settings.flush_interval
        self._item_cap = item_cap
        self._byte_cap = byte_cap
        self._counters = Counters()
        self._triggers = dict.fromkeys(FLUSH_TRIGGERS, 0)
        self._chunks: list[ArtifactChunk] = []
        self._events: list[Event] = []
        self._types: dict[str, int] = {}  # the events in ``_events`` by type, swapped out with them
        self._chunk_bytes = 0
        self._event_bytes = 0
        self._f_events = 0  # events of the flush being written (for stats)
        self._f_bytes = 0
        self._lock = anyio.Lock()
        self._interval_task: asyncio.Task[None] | None = None
        self._termination_called = False
        self._closed = False

    # ------------------------------------------------------------------ ingestion

    async def ingest_event(self, event: Event) -> None:
        await self.ingest_events((event,))

    async def ingest_events(self, events: Sequence[Event]) -> None:
        """Events that arrived together (CONTRACT_POLICY §1), each taken as if alone, triggers included, without a
        coroutine per event. On a failure the events after the failing one are received and unflushed, as the
        runtime handed them over."""
        if self._take_whole(events):
            return
        counters = self._counters
        receive, hold = counters.receive, counters.hold
        flush_at, item_cap, byte_cap = self._flush_at, self._item_cap, self._byte_cap
        buf = self._events
        for i, event in enumerate(events):
            etype = event.type
            receive(etype)
            if self._closed:
                counters.reject(etype)
                counters.refuse(events[i + 1 :])
                raise PolicyError("streaming policy is closed")
            if self._interval_task is None and self._interval > 0:
                self._start_interval()
            size = event_size(event)
            if (buf or self._chunks) and (
                len(buf) + len(self._chunks) + 1 > item_cap or self._event_bytes + self._chunk_bytes + size > byte_cap
            ):
                try:
                    await self._wait_room(size)
                except BaseException:
                    counters.reject(etype)
                    counters.refuse(events[i + 1 :])
                    raise
                buf = self._events
            buf.append(event)
            hold(etype)
            types = self._types
            types[etype] = types.get(etype, 0) + 1
            self._event_bytes += size
            self._mark()
            trigger = None
            if len(buf) + len(self._chunks) >= item_cap or self._event_bytes + self._chunk_bytes >= byte_cap:
                trigger = "capacity"
            elif flush_at and len(buf) >= flush_at:
                trigger = "count"
            if trigger is not None:
                try:
                    await self._flush(trigger)
                except BaseException:
                    counters.refuse(events[i + 1 :])
                    raise
                buf = self._events

    def _take_whole(self, events: Sequence[Event]) -> bool:
        """Take the whole group at once when none of its events would meet a cap or a flush trigger, which is
        what taking them one by one would then do (count, append, mark the high-water, nothing else); ``False``
        leaves the group to the one-by-one loop (a closed policy, the first events before the interval timer
        runs, a group that reaches a cap or the flush count)."""
        if self._closed or (self._interval_task is None and self._interval > 0):
            return False
        buf = self._events
        n = len(buf) + len(events)
        if n + len(self._chunks) >= self._item_cap or (self._flush_at and n >= self._flush_at):
            return False
        try:  # every event decoded from a frame knows its size: summed in C
            total = sum(map(_WIRE_SIZE, events))
        except (TypeError, AttributeError):  # one built in memory (size None): encoded to learn it
            total = sum(map(event_size, events))
        if self._event_bytes + self._chunk_bytes + total >= self._byte_cap:
            return False
        group = Counter(map(_TYPE, events))
        self._counters.take(group)
        add_counts(self._types, group)
        buf.extend(events)
        self._event_bytes += total
        self._mark()
        return True

    async def ingest_chunk(self, chunk: ArtifactChunk) -> None:
        self._counters.chunks_received += 1
        if self._closed:
            raise PolicyError("streaming policy is closed")
        if self._interval_task is None and self._interval > 0:
            self._start_interval()
        size = len(chunk.data)
        if self._events or self._chunks:
            await self._wait_room(size)
        self._chunks.append(chunk)
        self._chunk_bytes += size
        self._mark()
        if (
            len(self._events) + len(self._chunks) >= self._item_cap
            or self._event_bytes + self._chunk_bytes >= self._byte_cap
        ):
            await self._flush("capacity")

    async def _wait_room(self, size: int) -> None:
        """While the buffer is non-empty and the item would exceed a cap, flush (``capacity``)."""
        while (self._events or self._chunks) and (
            len(self._events) + len(self._chunks) + 1 > self._item_cap
            or self._event_bytes + self._chunk_bytes + size > self._byte_cap
        ):
            await self._flush("capacity")

    def _mark(self) -> None:
        self._counters.mark(len(self._events) + self._f_events, self._event_bytes + self._chunk_bytes + self._f_bytes)

    # ------------------------------------------------------------------ flushing

    async def _flush(self, trigger: str) -> None:
        counters = self._counters
        counters.flush_count += 1
        self._triggers[trigger] += 1
        async with self._lock:
            chunks, events, types = self._chunks, self._events, self._types
            if not chunks and not events:
                return
            chunk_bytes, event_bytes = self._chunk_bytes, self._event_bytes
            self._chunks, self._events, self._types = [], [], {}
            self._chunk_bytes = self._event_bytes = 0
            self._f_events, self._f_bytes = len(events), chunk_bytes + event_bytes
            batch = Batch(chunks, events)
            interval = trigger == "interval"
            retries = 0 if interval else self.settings.max_flush_retries
            try:
                await write_batch(
                    self._sink,
                    batch,
                    mode="chunks_first",
                    max_retries=retries,
                    sleep=self._sleep,
                    new_id=self._new_id,
                    on_failure=self._on_interval_failure if interval else self._on_attempt_failed,
                    on_chunks_committed=self._on_chunks_committed,
                )
            except BaseException as exc:
                # back ahead of newer items; chunks only if their phase never committed
                if not batch.chunks_done:
                    self._chunks[:0] = chunks
                    self._chunk_bytes += chunk_bytes
                self._events[:0] = events
                self._event_bytes += event_bytes
                add_counts(self._types, types)
                self._f_events = self._f_bytes = 0
                if not isinstance(exc, BatchFailed):
                    raise
                if interval:
                    self._log.warning("Warning: streaming interval flush failed: {}", exc.error)
                    return
                counters.errors += 1
                message = f"streaming flush failed permanently after {exc.retries} retries: {exc.error}"
                self._log.error("{}", message)
                raise PolicyError(message) from exc.error
            counters.persist_counts(types)  # once per type, not per event
            self._f_events = self._f_bytes = 0

    def _on_attempt_failed(self, attempt: int, attempts: int, error: Exception) -> None:
        counters = self._counters
        counters.flush_failures += 1
        if attempt < attempts:
            counters.write_retries += 1
        self._log.warning("Warning: streaming flush failed (attempt {}/{}): {}", attempt, attempts, error)

    def _on_interval_failure(self, attempt: int, attempts: int, error: Exception) -> None:
        self._counters.flush_failures += 1

    def _on_chunks_committed(self, batch: Batch) -> None:
        self._counters.chunks_persisted += len(batch.chunks)

    def _start_interval(self) -> None:
        if not self._closed:
            self._interval_task = asyncio.get_running_loop().create_task(
                self._run_interval(), name="quarry-streaming-interval"
            )

    async def _run_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not (self._events or self._chunks):
                continue
            try:
                await self._flush("interval")
            except Exception as exc:  # interval flushes never raise PolicyError; anything else is a bug
                self._log.warning("Warning: streaming interval flush failed: {}", exc)

    # ------------------------------------------------------------------ lifecycle

    async def flush(self, trigger: str = "termination") -> None:
        """Flush now; ``trigger`` (default ``termination``) is the ``flush_triggers`` key counted."""
        if trigger not in self._triggers:
            trigger = "termination"
        if trigger == "termination":
            self._termination_called = True
        await self._flush(trigger)

    async def close(self) -> None:
        """Stop the interval task, flush once more if ``flush()`` never ran (best effort), close the sink.
        Idempotent; what stays buffered is reported as unflushed."""
        if self._closed:
            return
        self._closed = True
        task, self._interval_task = self._interval_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        if not self._termination_called and (self._events or self._chunks):
            try:
                await self.flush("termination")
            except PolicyError as exc:
                self._log.warning("Warning: streaming policy: flush at close failed: {}", exc)
        await self._sink.close()

    def stats(self) -> PolicyStats:
        return self._counters.snapshot(
            buffered_events=len(self._events) + self._f_events,
            buffered_bytes=self._event_bytes + self._chunk_bytes + self._f_bytes,
            flush_triggers=self._triggers,
        )
