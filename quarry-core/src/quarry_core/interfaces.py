"""Protocols and value types shared between the runtime and its plugins (CONTRACT_POLICY, CONTRACT_LODE,
CONTRACT_INTEGRATION).

Plugins implement these protocols; the runtime only ever talks to them through these names. I/O methods are
``async``; hooks that *produce* implementations are sync (see :mod:`quarry_core.hookspecs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    import loguru

    from quarry_core.protocol.frames import ArtifactChunk, Event

__all__ = [
    "BROWSER_LAUNCH_ENV",
    "AdapterConfig",
    "EventSink",
    "EventSinkConfig",
    "ExecutorConfig",
    "ExecutorLauncher",
    "GroupIngestion",
    "IngestionPolicy",
    "NotificationAdapter",
    "PolicyConfig",
    "PolicyContext",
    "PolicyStats",
    "RunInfo",
    "RunOutcome",
    "RunPartition",
    "RunStorage",
    "SidecarFile",
    "Sink",
    "StorageBackend",
    "StorageConfig",
    "browser_launch_settings",
]


# --------------------------------------------------------------------------- ingestion policies


@attrs.frozen
class PolicyConfig:
    """Settings of one ingestion policy (``policy.*`` in the config file, ``--buffer-*`` etc. on the CLI).

    Durations are seconds. ``batch_events``/``batch_bytes`` of ``None`` mean "derived" (CONTRACT_POLICY).
    """

    name: str = "strict"
    flush_mode: str = "at_least_once"
    buffer_events: int = 0
    buffer_bytes: int = 0
    batch_events: int | None = None
    batch_bytes: int | None = None
    flush_count: int = 0
    flush_interval: float = 0.0
    max_flush_retries: int = 3
    final_flush_timeout: float = 30.0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class PolicyStats:
    """An immutable snapshot of a policy's counters (CONTRACT_POLICY §1), safe to take during ingestion."""

    events_received: int = 0
    events_persisted: int = 0
    events_dropped: int = 0
    dropped_by_type: Mapping[str, int] = attrs.field(factory=dict)
    dropped_by_reason: Mapping[str, int] = attrs.field(factory=dict)
    events_unflushed: int = 0
    chunks_received: int = 0
    chunks_persisted: int = 0
    buffered_events: int = 0
    buffered_bytes: int = 0
    flush_count: int = 0
    flush_failures: int = 0
    write_retries: int = 0
    errors: int = 0
    flush_triggers: Mapping[str, int] | None = None
    received_by_type: Mapping[str, int] = attrs.field(factory=dict)
    persisted_by_type: Mapping[str, int] = attrs.field(factory=dict)
    unflushed_by_type: Mapping[str, int] = attrs.field(factory=dict)
    buffer_high_water_events: int = 0
    buffer_high_water_bytes: int = 0


@attrs.frozen
class PolicyContext:
    """What a policy may know about its run: identity and a logger bound to it. Nothing about the script."""

    run_id: str
    logger: loguru.Logger
    policy: str


class Sink(Protocol):
    """Where a policy writes. One call = one atomic commit; a repeated ``snapshot_id`` makes a retry idempotent."""

    async def write_events(self, batch: Sequence[Event], *, snapshot_id: str | None = None) -> None: ...

    async def write_chunks(self, batch: Sequence[ArtifactChunk], *, snapshot_id: str | None = None) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class IngestionPolicy(Protocol):
    """Routes every event and chunk to its sink. Raising ``PolicyError`` ends the run with ``policy_failure``."""

    name: str

    async def ingest_event(self, event: Event) -> None: ...

    async def ingest_chunk(self, chunk: ArtifactChunk) -> None: ...

    async def flush(self, trigger: str = "termination") -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> PolicyStats: ...


@runtime_checkable
class GroupIngestion(Protocol):
    """Optional extension of :class:`IngestionPolicy`: take consecutive events that arrived together at once.

    When the policy has ``ingest_events``, the runtime hands it every event frame that had already arrived
    complete behind the one it waited for (up to a bound; a chunk or another frame kind, a terminal event, a
    failed check end the group), checked one by one in order as always. Awaiting it must be equivalent to awaiting
    ``ingest_event`` for each event in order, except that the policy may commit them together (``strict``: one
    snapshot, a *group commit*). Raising ends the run with ``policy_failure``; events of the group not known to
    be persisted count as unflushed. Policies without it are fed one event at a time (CONTRACT_POLICY §1).
    """

    async def ingest_events(self, events: Sequence[Event]) -> None: ...


# --------------------------------------------------------------------------- storage


@attrs.frozen
class StorageConfig:
    """Where runs are persisted (``storage.*``). ``path`` is a local directory or any fsspec URL."""

    backend: str = "lode"
    path: str = "./quarry-data"
    dataset: str = "quarry"
    codec: str = "parquet"
    compression: str | None = None
    region: str | None = None
    endpoint: str | None = None
    s3_path_style: bool = False
    options: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class RunPartition:
    """The partition values shared by every record of one run (``day`` is the run's start date)."""

    source: str
    category: str
    day: str
    run_id: str


@attrs.frozen
class SidecarFile:
    """A stored ``ctx.storage.put`` file; ``key`` is its path relative to the storage root."""

    filename: str
    content_type: str
    size: int
    key: str


class RunStorage(Protocol):
    """Storage bound to one run's partition. Every write is one atomic snapshot; empty writes return ``None``."""

    async def write_events(
        self, events: Sequence[Event], *, policy: str, snapshot_id: str | None = None
    ) -> str | None: ...

    async def write_chunks(self, chunks: Sequence[ArtifactChunk], *, snapshot_id: str | None = None) -> str | None: ...

    async def write_records(self, records: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
        """Write run-level records (tables ``runs``, ``metrics``, ``outbox``) in one snapshot."""
        ...

    async def put_file(self, filename: str, content_type: str, data: bytes | BinaryIO) -> SidecarFile:
        """Create-only sidecar write; raises a ``StorageError`` (kind ``path_exists`` for a repeated name)."""
        ...

    @property
    def write_retries(self) -> int:
        """Pointer compare-and-swap retries so far (``lode_write_retry_total``)."""
        ...

    async def close(self) -> None: ...


class StorageBackend(Protocol):
    """A storage backend built from a :class:`StorageConfig`. ``protocol`` is the fsspec protocol (``file``...)."""

    protocol: str
    root_url: str

    def open_run(self, partition: RunPartition) -> RunStorage: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- executors


#: Environment variables that decide how an executor launches Chromium (executable, headed or headless, sandbox).
#: A browser reuse server records the values it was started with (``launch`` in its discovery file), and a run
#: whose values differ does not reuse it (CONTRACT_RUN §3.1).
BROWSER_LAUNCH_ENV = ("QUARRY_BROWSER_EXECUTABLE", "QUARRY_HEADLESS", "QUARRY_NO_SANDBOX")


def browser_launch_settings(env: Mapping[str, str]) -> dict[str, str | None]:
    """The :data:`BROWSER_LAUNCH_ENV` values of ``env`` (an empty value counts as unset)."""
    return {key: env.get(key) or None for key in BROWSER_LAUNCH_ENV}


@attrs.frozen
class ExecutorConfig:
    """How to start an executor: the interpreter and an optional directory for the script's imports."""

    python: str
    resolve_from: str | None = None


class ExecutorLauncher(Protocol):
    """Gives the command line and extra environment of an executor process."""

    name: str
    version: str

    def command(self, warm: bool = False) -> list[str]: ...

    def env(self) -> dict[str, str]: ...


# --------------------------------------------------------------------------- notifications and event sinks


@attrs.frozen
class AdapterConfig:
    type: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float = 10.0
    retries: int = 3
    options: Mapping[str, Any] = attrs.field(factory=dict)


class NotificationAdapter(Protocol):
    async def publish(self, event: Mapping[str, Any]) -> None: ...

    async def close(self) -> None: ...


@attrs.frozen
class EventSinkConfig:
    type: str
    delivery: str = "mandatory"
    url: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)


class EventSink(Protocol):
    label: str

    async def write_events(self, batch: Sequence[Event]) -> None: ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- observer hooks


@attrs.frozen
class RunInfo:
    """Identity of a run, handed to observer hooks."""

    run_id: str
    attempt: int
    source: str
    category: str
    day: str
    script: str
    policy: str
    job_id: str | None = None
    parent_run_id: str | None = None
    spawned_by_run_id: str | None = None
    depth: int = 0


@attrs.frozen
class RunOutcome:
    """How a run ended, handed to ``quarry_run_finished``."""

    outcome: str
    message: str
    exit_code: int
    event_count: int
    duration_ms: int
