"""Fakes for testing Quarry plugins: an in-memory :class:`MemorySink`, event and chunk builders, a policy
context and a loguru log capture.

Nothing here imports pytest or Hypothesis. The sink is driven from the test::

    sink = MemorySink()
    sink.fail(2)                       # the next two calls raise SinkFailure
    sink.fail(None, on="events")       # every write_events call fails until heal()
    sink.fail(1, ambiguous=True)       # the next call commits, then raises (a timeout after commit)
    sink.stall()                       # calls block until release(); await sink.wait_stalled()
    sink.slow(20)                      # every call yields to the event loop 20 times before committing

Every successful call is one :class:`Commit` in ``sink.commits``, in commit order. A call repeating the
``snapshot_id`` of a committed call succeeds without writing (Lode's idempotent retry, lode.md §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from quarry_core.interfaces import PolicyContext
from quarry_core.protocol.frames import ArtifactChunk, Event

if TYPE_CHECKING:
    import loguru

__all__ = [
    "ALL_EVENT_TYPES",
    "DEFAULT_RUN_ID",
    "DEFAULT_TS",
    "Commit",
    "LogCapture",
    "LogRecord",
    "MemorySink",
    "SinkFailure",
    "capture_logs",
    "make_artifact",
    "make_chunk",
    "make_event",
    "make_events",
    "policy_context",
    "sample_payload",
]

SinkCallKind = Literal["events", "chunks"]
Target = Literal["events", "chunks", "any"]

#: Every event type of contract 1.0.0, in a stable order.
ALL_EVENT_TYPES: tuple[str, ...] = (
    "item",
    "artifact",
    "checkpoint",
    "enqueue",
    "rotate_proxy",
    "log",
    "run_error",
    "run_complete",
)

DEFAULT_RUN_ID = "run-test"
DEFAULT_TS = "2026-01-01T00:00:00.000Z"


class SinkFailure(Exception):
    """The failure a :class:`MemorySink` raises when told to fail."""


@attrs.frozen
class Commit:
    """One committed sink call: ``kind`` is ``"events"`` or ``"chunks"``; ``index`` is its commit position."""

    index: int
    kind: SinkCallKind
    items: tuple[Any, ...]
    snapshot_id: str | None


@attrs.define
class _FailRule:
    on: Target
    remaining: int | None  # None = forever
    ambiguous: bool
    error: BaseException | None

    def matches(self, kind: SinkCallKind) -> bool:
        return (self.remaining is None or self.remaining > 0) and self.on in ("any", kind)


class MemorySink:
    """An in-memory :class:`~quarry_core.interfaces.Sink` that records commits and fails or stalls on demand.

    Attributes read by tests:

    - ``commits``: committed calls in order; ``events`` / ``chunks``: their items flattened in commit order.
    - ``calls``: every call as ``(kind, batch size, snapshot_id)``, successful or not.
    - ``replays``: calls skipped because their ``snapshot_id`` was already committed.
    - ``failures``: calls that raised; ``close_calls``: ``close()`` calls; ``closed``.
    """

    def __init__(self) -> None:
        self.commits: list[Commit] = []
        self.calls: list[tuple[SinkCallKind, int, str | None]] = []
        self.replays: list[tuple[SinkCallKind, str]] = []
        self.failures = 0
        self.close_calls = 0
        self.closed = False
        self._committed_ids: set[str] = set()
        self._rules: list[_FailRule] = []
        self._stall_on: Target | None = None
        self._gate = asyncio.Event()
        self._gate.set()
        self._stalled = 0
        self._stalled_event = asyncio.Event()
        self._slow_steps = 0

    # ------------------------------------------------------------------ test controls

    def fail(
        self,
        times: int | None = 1,
        *,
        on: Target = "any",
        ambiguous: bool = False,
        error: BaseException | None = None,
    ) -> None:
        """Make the next ``times`` matching calls fail (``None`` = until :meth:`heal`).

        ``ambiguous`` calls commit first and raise afterwards, like a timeout after a successful commit.
        Rules are consumed in the order they were added.
        """
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 or None")
        self._rules.append(_FailRule(on=on, remaining=times, ambiguous=ambiguous, error=error))

    def heal(self) -> None:
        """Forget every failure rule."""
        self._rules.clear()

    def stall(self, on: Target = "any") -> None:
        """Block matching calls (before they commit) until :meth:`release`."""
        self._stall_on = on
        if self._gate.is_set():
            self._gate = asyncio.Event()

    def slow(self, steps: int) -> None:
        """Make every call yield to the event loop ``steps`` times before it commits (a lagging sink that
        never blocks for good); 0 restores instant calls."""
        if steps < 0:
            raise ValueError("steps must be >= 0")
        self._slow_steps = steps

    def release(self) -> None:
        """Let stalled calls (and later ones) proceed."""
        self._stall_on = None
        self._gate.set()

    @property
    def stalled(self) -> int:
        """How many calls are blocked by :meth:`stall` right now."""
        return self._stalled

    async def wait_stalled(self, count: int = 1) -> None:
        """Wait until at least ``count`` calls are blocked by :meth:`stall`."""
        while self._stalled < count:
            await self._stalled_event.wait()

    @property
    def events(self) -> list[Event]:
        return [e for c in self.commits if c.kind == "events" for e in c.items]

    @property
    def chunks(self) -> list[ArtifactChunk]:
        return [ch for c in self.commits if c.kind == "chunks" for ch in c.items]

    @property
    def event_commits(self) -> list[Commit]:
        return [c for c in self.commits if c.kind == "events"]

    @property
    def chunk_commits(self) -> list[Commit]:
        return [c for c in self.commits if c.kind == "chunks"]

    # ------------------------------------------------------------------ Sink protocol

    async def write_events(self, batch: Sequence[Event], *, snapshot_id: str | None = None) -> None:
        await self._call("events", batch, snapshot_id)

    async def write_chunks(self, batch: Sequence[ArtifactChunk], *, snapshot_id: str | None = None) -> None:
        await self._call("chunks", batch, snapshot_id)

    async def close(self) -> None:
        self.close_calls += 1
        self.closed = True

    # ------------------------------------------------------------------ internals

    async def _call(self, kind: SinkCallKind, batch: Sequence[Any], snapshot_id: str | None) -> None:
        items = tuple(batch)  # the caller may reuse its list
        self.calls.append((kind, len(items), snapshot_id))
        for _ in range(self._slow_steps):
            await asyncio.sleep(0)
        if self._stall_on is not None and self._stall_on in ("any", kind):
            gate = self._gate
            self._stalled += 1
            arrived, self._stalled_event = self._stalled_event, asyncio.Event()
            arrived.set()
            try:
                await gate.wait()
            finally:
                self._stalled -= 1
        rule = next((r for r in self._rules if r.matches(kind)), None)
        if rule is not None and rule.remaining is not None:
            rule.remaining -= 1
        if rule is not None and not rule.ambiguous:
            self.failures += 1
            raise rule.error if rule.error is not None else SinkFailure(f"injected {kind} write failure")
        if snapshot_id is not None and snapshot_id in self._committed_ids:
            self.replays.append((kind, snapshot_id))
        elif items:
            self.commits.append(Commit(len(self.commits), kind, items, snapshot_id))
            if snapshot_id is not None:
                self._committed_ids.add(snapshot_id)
        if rule is not None:  # ambiguous: committed, but the caller cannot know
            self.failures += 1
            raise (rule.error if rule.error is not None else SinkFailure(f"injected {kind} timeout after commit"))


# --------------------------------------------------------------------------- events and chunks


def sample_payload(event_type: str, n: int = 1, **extra: Any) -> dict[str, Any]:
    """A payload that satisfies the schema of ``event_type`` (wire.md §4.1); ``extra`` keys override."""
    payloads: dict[str, dict[str, Any]] = {
        "item": {"item_type": "product", "data": {"n": n}},
        "artifact": {
            "artifact_id": str(uuid.UUID(int=n)),
            "name": f"artifact-{n}.bin",
            "content_type": "application/octet-stream",
            "size_bytes": 0,
        },
        "checkpoint": {"checkpoint_id": f"cp-{n}"},
        "enqueue": {"target": "next.py", "params": {"n": n}},
        "rotate_proxy": {"reason": "blocked"},
        "log": {"level": "info", "message": f"message {n}"},
        "run_error": {"error_type": "script_error", "message": "boom"},
        "run_complete": {"summary": {"n": n}},
    }
    if event_type not in payloads:
        raise ValueError(f"unknown event type {event_type!r}")
    payload = payloads[event_type]
    payload.update(extra)
    return payload


def make_event(
    seq: int,
    event_type: str = "item",
    payload: Mapping[str, Any] | None = None,
    *,
    run_id: str = DEFAULT_RUN_ID,
    ts: str = DEFAULT_TS,
) -> Event:
    """An :class:`Event` with a deterministic ``event_id`` and a valid payload for its type."""
    return Event(
        event_id=f"{run_id}-{seq:08d}",
        run_id=run_id,
        seq=seq,
        type=event_type,
        ts=ts,
        payload=dict(payload) if payload is not None else sample_payload(event_type, seq),
    )


def make_events(types: Iterable[str], *, start: int = 1, run_id: str = DEFAULT_RUN_ID) -> list[Event]:
    """Events of the given types with consecutive ``seq`` starting at ``start``."""
    return [make_event(start + i, t, run_id=run_id) for i, t in enumerate(types)]


def make_chunk(artifact_id: str, seq: int = 1, data: bytes = b"x", *, is_last: bool = False) -> ArtifactChunk:
    return ArtifactChunk(artifact_id=artifact_id, seq=seq, is_last=is_last, data=data)


def make_artifact(
    seq: int,
    chunks: Sequence[bytes] = (b"chunk",),
    *,
    artifact_id: str | None = None,
    run_id: str = DEFAULT_RUN_ID,
) -> tuple[list[ArtifactChunk], Event]:
    """The chunks of one artifact and its ``artifact`` commit event (event ``seq``), in sending order."""
    if not chunks:
        raise ValueError("an artifact has at least one chunk")
    aid = artifact_id if artifact_id is not None else str(uuid.UUID(int=(1 << 64) + seq))
    parts = [make_chunk(aid, i + 1, data, is_last=i == len(chunks) - 1) for i, data in enumerate(chunks)]
    payload = sample_payload("artifact", seq, artifact_id=aid, size_bytes=sum(len(c) for c in chunks))
    return parts, make_event(seq, "artifact", payload, run_id=run_id)


# --------------------------------------------------------------------------- context and logs


def policy_context(
    policy: str = "test", *, run_id: str = DEFAULT_RUN_ID, logger: loguru.Logger | None = None
) -> PolicyContext:
    """A :class:`PolicyContext` with the global loguru logger bound to ``run_id`` (or ``logger``)."""
    if logger is None:
        from loguru import logger as _logger

        logger = _logger.bind(run_id=run_id)
    return PolicyContext(run_id=run_id, logger=logger, policy=policy)


@attrs.frozen
class LogRecord:
    level: str
    message: str


class LogCapture:
    """Records collected by :func:`capture_logs`."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    @property
    def messages(self) -> list[str]:
        return [r.message for r in self.records]

    def at(self, level: str) -> list[str]:
        """Messages logged at ``level`` (``"WARNING"``, ``"DEBUG"``...)."""
        return [r.message for r in self.records if r.level == level.upper()]

    def count(self, prefix: str, level: str | None = None) -> int:
        return sum(
            1 for r in self.records if r.message.startswith(prefix) and (level is None or r.level == level.upper())
        )


@contextlib.contextmanager
def capture_logs(*enable: str, level: str = "DEBUG") -> Iterator[LogCapture]:
    """Capture loguru records at ``level`` and above; ``enable`` names libraries to enable meanwhile
    (libraries call ``logger.disable(<name>)`` on import; they are disabled again on exit)."""
    from loguru import logger

    capture = LogCapture()

    def sink(message: Any) -> None:
        record = message.record
        capture.records.append(LogRecord(record["level"].name, record["message"]))

    for name in enable:
        logger.enable(name)
    handler = logger.add(sink, level=level, format="{message}")
    try:
        yield capture
    finally:
        logger.remove(handler)
        for name in enable:
            logger.disable(name)
