"""Entry point of quarry-policy-buffered (``[project.entry-points.quarry] policy-buffered``).

Registers ``buffered`` and ``streaming``. Imports only :mod:`quarry_policy_buffered.settings` (for
``validate``); the policies are imported inside the factories.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from quarry_core import hookimpl
from quarry_core.registrations import IngestionPolicyPlugin
from quarry_policy_buffered.settings import validate_buffered, validate_streaming

if TYPE_CHECKING:
    from quarry_core.interfaces import IngestionPolicy, PolicyConfig, PolicyContext, Sink

__all__ = [
    "BUFFERED_OPTIONS",
    "STREAMING_OPTIONS",
    "make_buffered_policy",
    "make_streaming_policy",
    "quarry_ingestion_policies",
]

#: ``policy.*`` settings each policy reads (the CLI warns about the others).
BUFFERED_OPTIONS = frozenset(
    {"buffer_events", "buffer_bytes", "batch_events", "batch_bytes", "flush_mode", "max_flush_retries"}
)
STREAMING_OPTIONS = frozenset({"flush_count", "flush_interval", "max_flush_retries"})


def make_buffered_policy(config: PolicyConfig, sink: Sink, context: PolicyContext) -> IngestionPolicy:
    """Factory of ``buffered``: ``(PolicyConfig, Sink, PolicyContext) -> IngestionPolicy``."""
    from quarry_policy_buffered.buffered import BufferedPolicy

    return BufferedPolicy(config, sink, context)


def make_streaming_policy(config: PolicyConfig, sink: Sink, context: PolicyContext) -> IngestionPolicy:
    """Factory of ``streaming``: ``(PolicyConfig, Sink, PolicyContext) -> IngestionPolicy``."""
    from quarry_policy_buffered.streaming import StreamingPolicy

    return StreamingPolicy(config, sink, context)


@hookimpl
def quarry_ingestion_policies() -> Iterator[IngestionPolicyPlugin]:
    yield IngestionPolicyPlugin(
        name="buffered",
        factory=make_buffered_policy,
        summary="bounded buffer written in batches by one writer; drops droppable events under pressure",
        validate=validate_buffered,
        option_names=BUFFERED_OPTIONS,
    )
    yield IngestionPolicyPlugin(
        name="streaming",
        factory=make_streaming_policy,
        summary="flushes on count, interval, capacity and termination; never drops",
        validate=validate_streaming,
        option_names=STREAMING_OPTIONS,
    )
