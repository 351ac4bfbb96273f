"""The ``strict`` ingestion policy (policies.md §4, CONTRACT_POLICY §4).

Every chunk and every group of events is one sink call, that is one commit, before ``ingest_*`` returns: an event
is visible in storage before the runtime waits for another frame (D8). A group is what the runtime hands to
``ingest_events``: the events that had already arrived together (group commit); one at a time they are one
snapshot each. A failed write is retried up to ``max_flush_retries`` times with the shared backoff
(100 ms * 2^(i-1), cap 5 s), always with the same snapshot id, so a retry of a write that did commit cannot
duplicate it. Strict never drops.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from quarry_core.errors import ConfigError, PolicyError
from quarry_core.interfaces import PolicyConfig, PolicyContext, PolicyStats, Sink
from quarry_core.retry import backoff_delay
from quarry_core.snapshot_ids import new_snapshot_id

if TYPE_CHECKING:
    from quarry_core.protocol.frames import ArtifactChunk, Event

__all__ = ["StrictPolicy", "validate_config"]

Sleep = Callable[[float], Awaitable[Any]]


def validate_config(config: PolicyConfig) -> None:
    """Raise :class:`ConfigError` for settings strict cannot run with (exit 4)."""
    if isinstance(config.max_flush_retries, bool) or not isinstance(config.max_flush_retries, int):
        raise ConfigError(f"invalid --max-flush-retries {config.max_flush_retries!r} (must be an integer >= 0)")
    if config.max_flush_retries < 0:
        raise ConfigError(f"invalid --max-flush-retries {config.max_flush_retries} (must be >= 0)")


class StrictPolicy:
    """Write-through policy: one commit per chunk and per group of events that arrived together.

    ``StrictPolicy(config, sink, context)`` is the plugin factory. The keyword-only ``sleep`` (an awaitable
    taking seconds) and ``snapshot_ids`` (a zero-argument id maker) exist for tests.
    """

    name = "strict"

    def __init__(
        self,
        config: PolicyConfig,
        sink: Sink,
        context: PolicyContext | None = None,
        *,
        sleep: Sleep | None = None,
        snapshot_ids: Callable[[], str] | None = None,
    ) -> None:
        validate_config(config)
        self._config = config
        self._sink = sink
        self._context = context
        self._sleep: Sleep = sleep if sleep is not None else asyncio.sleep
        self._new_id = snapshot_ids if snapshot_ids is not None else new_snapshot_id
        self._retries = config.max_flush_retries
        self._closed = False
        self._received: Counter[str] = Counter()
        self._persisted: Counter[str] = Counter()
        self._unflushed: Counter[str] = Counter()
        self._chunks_received = 0
        self._chunks_persisted = 0
        self._flush_count = 0
        self._write_retries = 0
        self._errors = 0

    # ------------------------------------------------------------------ ingestion

    async def ingest_event(self, event: Event) -> None:
        await self.ingest_events((event,))

    async def ingest_events(self, events: Sequence[Event]) -> None:
        """Commit events that arrived together in one snapshot (group commit, CONTRACT_POLICY §4)."""
        received = self._received
        for event in events:
            received[event.type] += 1
        if self._closed:
            self._count(self._unflushed, events)
            self._errors += 1
            raise PolicyError("strict policy is closed")
        ok = False
        try:
            await self._write(self._sink.write_events, events, "event")
            ok = True
        finally:  # failed for good, or cancelled mid-write: received but not known to be written
            self._count(self._persisted if ok else self._unflushed, events)

    @staticmethod
    def _count(counter: Counter[str], events: Sequence[Event]) -> None:
        for event in events:
            counter[event.type] += 1

    async def ingest_chunk(self, chunk: ArtifactChunk) -> None:
        self._chunks_received += 1
        if self._closed:
            self._errors += 1
            raise PolicyError("strict policy is closed")
        await self._write(self._sink.write_chunks, [chunk], "chunk")
        self._chunks_persisted += 1

    async def _write(self, write: Callable[..., Awaitable[None]], batch: Sequence[Any], what: str) -> None:
        snapshot_id = self._new_id()
        attempt = 0
        while True:
            try:
                await write(batch, snapshot_id=snapshot_id)
                return
            except Exception as exc:
                self._warn_failure(what, attempt + 1, exc)
                if attempt >= self._retries:
                    self._errors += 1
                    raise PolicyError(
                        f"strict policy: {what} write failed after {self._retries} retries: {exc}"
                    ) from exc
                attempt += 1
                self._write_retries += 1
                await self._sleep(backoff_delay(attempt))

    def _warn_failure(self, what: str, attempt: int, error: Exception) -> None:
        if self._context is not None:
            log = self._context.logger
        else:
            from loguru import logger

            log = logger
        log.warning(
            "Warning: strict policy: {} write failed (attempt {}/{}): {}", what, attempt, self._retries + 1, error
        )

    # ------------------------------------------------------------------ lifecycle

    async def flush(self, trigger: str = "termination") -> None:
        """Nothing is ever buffered; only counts the call."""
        self._flush_count += 1

    async def close(self) -> None:
        """Close the sink once; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        await self._sink.close()

    def stats(self) -> PolicyStats:
        received = dict(self._received)
        persisted = dict(self._persisted)
        unflushed = {t: n for t, n in self._unflushed.items() if n}
        return PolicyStats(
            events_received=sum(received.values()),
            events_persisted=sum(persisted.values()),
            events_dropped=0,
            dropped_by_type={},
            dropped_by_reason={},
            events_unflushed=sum(unflushed.values()),
            chunks_received=self._chunks_received,
            chunks_persisted=self._chunks_persisted,
            buffered_events=0,
            buffered_bytes=0,
            flush_count=self._flush_count,
            flush_failures=0,
            write_retries=self._write_retries,
            errors=self._errors,
            flush_triggers=None,
            received_by_type=received,
            persisted_by_type=persisted,
            unflushed_by_type=unflushed,
        )
