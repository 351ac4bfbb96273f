"""What an activity sees of its run while it executes: progress for heartbeats, ``enqueue`` events as work items.

:class:`ObservingHost` is the worker's plugin host. It hands every run's ingestion policy out wrapped in a
:class:`ObservedPolicy` that counts what it ingests (``events_received``, ``last_seq``), so a heartbeat can say how
far the run is without touching the runtime. :class:`EnqueueCollector` is the ``on_enqueue`` hook of
:func:`~quarry_core.runtime.run.execute_run`: it applies local fan-out's per-run rules (CONTRACT_RUN §4: target
not found, invalid partition, dedup) and the activity's budget, and leaves depth, the crawl-wide dedup and
``max_runs`` to the crawl workflow.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import attrs

from quarry_core.interfaces import IngestionPolicy, PolicyConfig, PolicyContext, PolicyStats, Sink
from quarry_core.plugins import PluginHost, Provided
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_core.registrations import IngestionPolicyPlugin
from quarry_core.runtime.fanout import admit_enqueue, dedup_key
from quarry_core.runtime.run import RunSettings
from quarry_temporal.models import WorkItem

__all__ = ["MAX_ENQUEUED_BYTES", "EnqueueCollector", "ObservedPolicy", "ObservingHost", "Progress"]

#: the work items one activity returns stay below this many bytes of JSON (the rest is counted skipped)
MAX_ENQUEUED_BYTES = 1 << 20


@attrs.define
class Progress:
    """A run's progress as its heartbeats report it."""

    run_id: str
    events_received: int = 0
    last_seq: int = 0

    def details(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "events_received": self.events_received, "last_seq": self.last_seq}


class ObservedPolicy:
    """An ingestion policy that records progress on its way to the real one (every call is passed on)."""

    def __init__(self, inner: IngestionPolicy, progress: Progress) -> None:
        self.inner = inner
        self.name = inner.name
        self.progress = progress

    async def ingest_event(self, event: Event) -> None:
        self.progress.events_received += 1
        self.progress.last_seq = max(self.progress.last_seq, event.seq)
        await self.inner.ingest_event(event)

    async def ingest_chunk(self, chunk: ArtifactChunk) -> None:
        await self.inner.ingest_chunk(chunk)

    async def flush(self, trigger: str = "termination") -> None:
        await self.inner.flush(trigger)

    async def close(self) -> None:
        await self.inner.close()

    def stats(self) -> PolicyStats:
        return self.inner.stats()


class ObservingHost(PluginHost):
    """The worker's plugin host: as :class:`PluginHost`, plus a :class:`Progress` per running run."""

    def __init__(self) -> None:
        super().__init__()
        self.progress: dict[str, Progress] = {}

    def watch(self, run_id: str) -> Progress:
        """Start recording the progress of ``run_id`` (call before the run builds its policy)."""
        progress = self.progress[run_id] = Progress(run_id)
        return progress

    def forget(self, run_id: str) -> None:
        self.progress.pop(run_id, None)

    def ingestion_policy(self, name: str) -> Provided[IngestionPolicyPlugin]:
        provided = super().ingestion_policy(name)
        factory = provided.record.factory

        def observed(config: PolicyConfig, sink: Sink, ctx: PolicyContext) -> IngestionPolicy:
            policy = factory(config, sink, ctx)
            progress = self.progress.get(ctx.run_id)
            return policy if progress is None else ObservedPolicy(policy, progress)

        return attrs.evolve(provided, record=attrs.evolve(provided.record, factory=observed))


class EnqueueCollector:
    """The ``on_enqueue`` hook of one activity's run (see the module docstring).

    Rules, in local fan-out's order, first match wins: target not a file → ``target_not_found``; a bad
    ``source``/``category`` override → ``invalid_partition``; the same key earlier in this run (or the run's own
    key) → ``enqueue_deduped``; ``budget`` items already collected → only the key is kept (``over_budget``: the
    workflow counts it ``enqueue_deduped`` if the crawl has seen it, else ``max_runs_reached``, as local fan-out
    would); the result's JSON above :data:`MAX_ENQUEUED_BYTES` → ``result_too_large``. Without ``collect`` every
    ``enqueue`` is only counted (``received``): the crawl workflow skips them as ``depth_exceeded``.
    """

    def __init__(
        self,
        run: RunSettings,
        *,
        collect: bool,
        budget: int,
        cwd: str | None = None,
        max_bytes: int = MAX_ENQUEUED_BYTES,
    ) -> None:
        self.collect = collect
        self.budget = budget
        self.cwd = cwd or os.getcwd()
        self.max_bytes = max_bytes
        self.own_key = dedup_key(os.path.realpath(run.script), run.job)
        self.seen: set[str] = {self.own_key}
        self.items: list[WorkItem] = []
        self.over_budget: list[str] = []
        self.bytes = 2  # "[]"
        self.received = 0
        self.deduped = 0
        self.skipped: dict[str, int] = {}

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    async def on_enqueue(self, spawner: RunSettings, event: Event) -> None:
        self.decide(spawner, event.payload)

    def decide(self, spawner: RunSettings, payload: Mapping[str, Any]) -> None:
        self.received += 1
        if not self.collect:
            return
        admitted = admit_enqueue(payload, spawner, self.cwd)
        if isinstance(admitted, str):
            self._skip(admitted)
            return
        key = admitted.key
        if key in self.seen:
            self.deduped += 1
            return
        if len(self.items) >= self.budget:  # the workflow decides: deduped (seen in the crawl) or max_runs_reached
            size = len(key) + 3
            if self.bytes + size > self.max_bytes:
                self._skip("result_too_large")
                return
            self.bytes += size
            self.over_budget.append(key)
            return
        item = WorkItem(
            target=admitted.target,
            params=admitted.params,
            dedup_key=key,
            source=admitted.source_override,
            category=admitted.category_override,
        )
        size = len(json.dumps(dataclasses.asdict(item), ensure_ascii=False).encode("utf-8")) + 1
        if self.bytes + size > self.max_bytes:
            self._skip("result_too_large")
            return
        self.seen.add(key)
        self.bytes += size
        self.items.append(item)
