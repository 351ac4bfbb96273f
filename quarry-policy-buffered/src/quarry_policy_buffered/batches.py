"""Writing one batch with retries, per flush mode (policies.md §5.5), and the counters both policies share.

A batch is written chunks first, then events; each phase is one sink call, that is one commit. On failure the
whole batch is retried up to ``max_flush_retries`` times with the shared backoff:

============== =============================== ============================
mode           succeeded chunk phase on retry  event phase on retry
============== =============================== ============================
at_least_once  re-sent (new snapshot id)       new snapshot id
chunks_first   skipped                         new snapshot id
two_phase      skipped                         same snapshot id
============== =============================== ============================

A failed chunk phase is retried with its own snapshot id in ``chunks_first`` and ``two_phase`` (so an
ambiguous failure cannot duplicate chunks there) and with a new one in ``at_least_once``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from quarry_core.interfaces import PolicyStats
from quarry_core.retry import backoff_delay

if TYPE_CHECKING:
    from quarry_core.interfaces import Sink
    from quarry_core.protocol.frames import ArtifactChunk, Event

__all__ = ["Batch", "BatchFailed", "Counters", "add_counts", "summarize_drops", "write_batch"]

Sleep = Callable[[float], Awaitable[Any]]

_TYPE = attrgetter("type")


class Batch:
    """The chunks and events of one batch, fixed when the batch is formed, and its progress."""

    __slots__ = ("chunk_snapshot_id", "chunks", "chunks_done", "event_snapshot_id", "events")

    def __init__(self, chunks: list[ArtifactChunk], events: list[Event]) -> None:
        self.chunks = chunks
        self.events = events
        self.chunks_done = not chunks
        self.chunk_snapshot_id: str | None = None
        self.event_snapshot_id: str | None = None

    def __len__(self) -> int:
        return len(self.chunks) + len(self.events)


class BatchFailed(Exception):
    """Every attempt of a batch failed; ``error`` is the last failure."""

    def __init__(self, error: Exception, retries: int) -> None:
        self.error = error
        self.retries = retries
        super().__init__(f"failed permanently after {retries} retries: {error}")


async def write_batch(
    sink: Sink,
    batch: Batch,
    *,
    mode: str,
    max_retries: int,
    sleep: Sleep,
    new_id: Callable[[], str],
    on_failure: Callable[[int, int, Exception], None],
    on_chunks_committed: Callable[[Batch], None],
) -> None:
    """Write ``batch`` (chunks, then events) with up to ``max_retries`` retries.

    ``on_failure(attempt, attempts, error)`` runs after every failed attempt (1-based, out of
    ``max_retries + 1``); ``on_chunks_committed`` once, the first time the chunk phase commits. Raises
    :class:`BatchFailed` when the budget is spent. Cancellation propagates untouched.
    """
    attempts = max_retries + 1
    reuse_chunk_id = mode != "at_least_once"
    skip_done_chunks = mode != "at_least_once"
    reuse_event_id = mode == "two_phase"
    chunks_committed_once = False
    attempt = 0
    while True:
        attempt += 1
        try:
            if batch.chunks and not (batch.chunks_done and skip_done_chunks):
                if batch.chunk_snapshot_id is None or not reuse_chunk_id:
                    batch.chunk_snapshot_id = new_id()
                await sink.write_chunks(batch.chunks, snapshot_id=batch.chunk_snapshot_id)
                batch.chunks_done = True
                if not chunks_committed_once:
                    chunks_committed_once = True
                    on_chunks_committed(batch)
            if batch.events:
                if batch.event_snapshot_id is None or not reuse_event_id:
                    batch.event_snapshot_id = new_id()
                await sink.write_events(batch.events, snapshot_id=batch.event_snapshot_id)
            return
        except Exception as exc:
            on_failure(attempt, attempts, exc)
            if attempt >= attempts:
                raise BatchFailed(exc, max_retries) from exc
        await sleep(backoff_delay(attempt))


def summarize_drops(dropped: Mapping[tuple[str, str], int]) -> str:
    """``"5 events dropped (enqueue: 1 evicted_for_non_droppable; log: 4 buffer_full)"``."""
    total = sum(dropped.values())
    by_type: dict[str, list[str]] = {}
    for (t, reason), n in sorted(dropped.items()):
        by_type.setdefault(t, []).append(f"{n} {reason}")
    parts = "; ".join(f"{t}: {', '.join(v)}" for t, v in by_type.items())
    return f"{total} event{'s' if total != 1 else ''} dropped ({parts})"


def add_counts(target: dict[str, int], counts: Mapping[str, int]) -> None:
    """Add ``counts`` (events by type) into ``target``."""
    for key, count in counts.items():
        target[key] = target.get(key, 0) + count


class Counters:
    """Event and chunk accounting shared by both policies; every update is O(1) per item.

    ``held`` counts events received and neither persisted nor dropped yet (waiting, in flight, or kept after
    a failure); it is reported as ``unflushed``, so ``received = persisted + dropped + unflushed`` holds at
    any moment, and at run end ``unflushed`` is what was lost.
    """

    __slots__ = (
        "chunks_persisted",
        "chunks_received",
        "dropped",
        "dropped_by_reason",
        "dropped_by_type",
        "errors",
        "flush_count",
        "flush_failures",
        "held",
        "high_water_bytes",
        "high_water_events",
        "persisted",
        "received",
        "rejected",
        "write_retries",
    )

    def __init__(self) -> None:
        self.received: dict[str, int] = {}
        self.persisted: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.rejected: dict[str, int] = {}  # refused after the policy failed or closed: unflushed too
        self.dropped_by_type: dict[str, int] = {}
        self.dropped_by_reason: dict[str, int] = {}
        self.dropped: dict[tuple[str, str], int] = {}
        self.chunks_received = 0
        self.chunks_persisted = 0
        self.flush_count = 0
        self.flush_failures = 0
        self.write_retries = 0
        self.errors = 0
        self.high_water_events = 0
        self.high_water_bytes = 0

    def receive(self, etype: str) -> None:
        received = self.received
        received[etype] = received.get(etype, 0) + 1

    def hold(self, etype: str) -> None:
        held = self.held
        held[etype] = held.get(etype, 0) + 1

    def take(self, types: Mapping[str, int]) -> None:
        """``receive`` and ``hold`` of events counted by type (a group taken at once)."""
        add_counts(self.received, types)
        add_counts(self.held, types)

    def reject(self, etype: str) -> None:
        self.rejected[etype] = self.rejected.get(etype, 0) + 1

    def refuse(self, events: Sequence[Event]) -> None:
        """Events handed over with one that failed, behind it: received, never taken (unflushed)."""
        for event in events:
            self.receive(event.type)
            self.reject(event.type)

    def persist(self, events: list[Event]) -> None:
        self.persist_counts(Counter(map(_TYPE, events)))  # counted in C, then once per type

    def persist_counts(self, types: Mapping[str, int]) -> None:
        """``persist`` of events counted by type."""
        held = self.held
        for t, count in types.items():
            held[t] -= count
        add_counts(self.persisted, types)

    def drop(self, etype: str, reason: str, *, was_held: bool) -> int:
        """Count one drop; returns how many drops of this (type, reason) there were before."""
        if was_held:
            self.held[etype] -= 1
        self.dropped_by_type[etype] = self.dropped_by_type.get(etype, 0) + 1
        self.dropped_by_reason[reason] = self.dropped_by_reason.get(reason, 0) + 1
        key = (etype, reason)
        before = self.dropped.get(key, 0)
        self.dropped[key] = before + 1
        return before

    def mark(self, events: int, nbytes: int) -> None:
        if events > self.high_water_events:
            self.high_water_events = events
        if nbytes > self.high_water_bytes:
            self.high_water_bytes = nbytes

    def drop_summary(self) -> str:
        return summarize_drops(self.dropped)

    def snapshot(
        self, *, buffered_events: int, buffered_bytes: int, flush_triggers: Mapping[str, int] | None
    ) -> PolicyStats:
        unflushed = {t: n for t, n in self.held.items() if n}
        for t, n in self.rejected.items():
            unflushed[t] = unflushed.get(t, 0) + n
        received = dict(self.received)
        persisted = {t: n for t, n in self.persisted.items() if n}
        dropped_by_type = dict(self.dropped_by_type)
        return PolicyStats(
            events_received=sum(received.values()),
            events_persisted=sum(persisted.values()),
            events_dropped=sum(dropped_by_type.values()),
            dropped_by_type=dropped_by_type,
            dropped_by_reason=dict(self.dropped_by_reason),
            events_unflushed=sum(unflushed.values()),
            chunks_received=self.chunks_received,
            chunks_persisted=self.chunks_persisted,
            buffered_events=buffered_events,
            buffered_bytes=buffered_bytes,
            flush_count=self.flush_count,
            flush_failures=self.flush_failures,
            write_retries=self.write_retries,
            errors=self.errors,
            flush_triggers=dict(flush_triggers) if flush_triggers is not None else None,
            received_by_type=received,
            persisted_by_type=persisted,
            unflushed_by_type=unflushed,
            buffer_high_water_events=self.high_water_events,
            buffer_high_water_bytes=self.high_water_bytes,
        )
