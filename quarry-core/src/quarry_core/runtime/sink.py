"""The sink a policy writes to (CONTRACT_POLICY sinks, CONTRACT_INTEGRATION event sinks).

Chunks always go to Lode. Events go to Lode (unless Lode events are disabled, in which case artifact commit
records still go there) and to every configured event sink, concurrently. A ``mandatory`` failure fails the
call; a ``best_effort`` failure is logged, counted per label and swallowed. Each Lode call counts one
``lode_write_success_total`` or ``lode_write_failure_total``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Any

import attrs
from loguru import logger

from quarry_core.interfaces import EventSink, EventSinkConfig, RunStorage
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_core.runtime.metrics import Collector

__all__ = ["AttachedSink", "LodeSink", "build_event_sinks"]

DELIVERIES = ("mandatory", "best_effort")


@attrs.frozen
class AttachedSink:
    """An event sink and how its failures count."""

    sink: EventSink
    delivery: str = "mandatory"


def build_event_sinks(
    host: Any, configs: Sequence[EventSinkConfig], *, source: str, category: str
) -> list[AttachedSink]:
    """One sink per configured event sink for one run, built through the plugin host.

    The run's ``source`` and ``category`` are added to each sink's options (an event carries neither). A
    factory error propagates (the run has written nothing yet).
    """
    attached: list[AttachedSink] = []
    for config in configs:
        record = host.event_sink(config.type).record
        options = {**dict(config.options), "source": source, "category": category}
        sink = record.factory(attrs.evolve(config, options=options))
        attached.append(AttachedSink(sink, config.delivery))
    return attached


class LodeSink:
    """Lode plus the run's event sinks, behind the policy's ``Sink`` protocol."""

    def __init__(
        self,
        storage: RunStorage,
        policy: str,
        metrics: Collector,
        *,
        event_sinks: Sequence[AttachedSink] = (),
        lode_events: bool = True,
        lode_delivery: str = "mandatory",
    ) -> None:
        self._storage = storage
        self._policy = policy
        self._metrics = metrics
        self._sinks = tuple(event_sinks)
        self._lode_events = lode_events
        self._lode_delivery = lode_delivery
        self.errors: Counter[str] = Counter()
        self._closed = False

    async def _lode_events_write(self, batch: Sequence[Event], snapshot_id: str | None) -> None:
        try:
            await self._storage.write_events(batch, policy=self._policy, snapshot_id=snapshot_id)
        except BaseException:
            self._metrics.inc("lode_write_failure_total")
            raise
        self._metrics.inc("lode_write_success_total")

    async def write_events(self, batch: Sequence[Event], *, snapshot_id: str | None = None) -> None:
        if not batch:
            return
        labels: list[str] = []
        deliveries: list[str] = []
        calls: list[Awaitable[None]] = []
        if self._lode_events:
            labels.append("lode")
            deliveries.append(self._lode_delivery)
            calls.append(self._lode_events_write(batch, snapshot_id))
        else:
            commits = [e for e in batch if e.type == "artifact"]
            if commits:
                labels.append("lode")
                deliveries.append("mandatory")
                calls.append(self._lode_events_write(commits, snapshot_id))
        for attached in self._sinks:
            labels.append(attached.sink.label)
            deliveries.append(attached.delivery)
            calls.append(attached.sink.write_events(batch))
        if len(calls) == 1:
            results: list[BaseException | None] = []
            try:
                await calls[0]
                results.append(None)
            except Exception as exc:
                results.append(exc)
        else:
            results = list(await asyncio.gather(*calls, return_exceptions=True))
        failures: list[tuple[str, BaseException]] = []
        for label, delivery, result in zip(labels, deliveries, results, strict=True):
            if result is None:
                continue
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            if delivery == "best_effort":
                self.errors[label] += 1
                logger.warning('Warning: best-effort event sink "{}": {}', label, result)
            else:
                failures.append((label, result))
        if len(failures) == 1:
            label, error = failures[0]
            if label == "lode" and len(labels) == 1:
                raise error
            raise RuntimeError(f"event sink write failed: {label}: {error}") from error
        if failures:
            detail = "; ".join(f"{label}: {exc}" for label, exc in failures)
            raise RuntimeError(f"event sink writes failed: {detail}") from failures[0][1]

    async def write_chunks(self, batch: Sequence[ArtifactChunk], *, snapshot_id: str | None = None) -> None:
        if not batch:
            return
        try:
            await self._storage.write_chunks(batch, snapshot_id=snapshot_id)
        except BaseException:
            self._metrics.inc("lode_write_failure_total")
            raise
        self._metrics.inc("lode_write_success_total")

    async def close(self) -> None:
        """Close the event sinks (close errors warn). The run storage outlives the policy."""
        if self._closed:
            return
        self._closed = True
        for attached in self._sinks:
            try:
                await attached.sink.close()
            except Exception as exc:
                logger.warning('Warning: closing event sink "{}" failed: {}', attached.sink.label, exc)
