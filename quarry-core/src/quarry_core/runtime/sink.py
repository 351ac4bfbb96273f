"""The sink a policy writes to: Lode (the run's storage) for events and chunks, counted per call."""

from __future__ import annotations

from collections.abc import Sequence

from quarry_core.interfaces import RunStorage
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_core.runtime.metrics import Collector

__all__ = ["LodeSink"]


class LodeSink:
    """One call = one snapshot; each call counts one ``lode_write_success_total`` or ``_failure_total``."""

    def __init__(self, storage: RunStorage, policy: str, metrics: Collector) -> None:
        self._storage = storage
        self._policy = policy
        self._metrics = metrics
        self._closed = False

    async def write_events(self, batch: Sequence[Event], *, snapshot_id: str | None = None) -> None:
        if not batch:
            return
        try:
            await self._storage.write_events(batch, policy=self._policy, snapshot_id=snapshot_id)
        except BaseException:
            self._metrics.inc("lode_write_failure_total")
            raise
        self._metrics.inc("lode_write_success_total")

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
        # The run storage outlives the policy (run records are written after the final flush).
        self._closed = True
