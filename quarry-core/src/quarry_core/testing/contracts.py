"""Abstract contract suites that every plugin of a kind runs, ours and third-party ones (policies.md §8).

Usage, in a plugin's test package::

    from quarry_core.interfaces import PolicyConfig
    from quarry_core.testing.contracts import PolicyContract

    from my_policy import MyPolicy

    class TestMyPolicyContract(PolicyContract):
        config = PolicyConfig(name="mine", buffer_events=100)
        factory = MyPolicy          # (PolicyConfig, Sink, PolicyContext) -> IngestionPolicy

Instead of ``factory`` a subclass may override ``make_policy(self, config, sink)``. Tests are plain sync
functions that drive the policy with ``asyncio.run``, so no async pytest plugin is needed. Every test builds
its configuration with :meth:`PolicyContract.make_config` (``attrs.evolve`` of ``config``), a fresh
:class:`~quarry_core.testing.fakes.MemorySink` and a fresh policy.

This module imports neither pytest nor Hypothesis; importing it is cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar

import attrs

from quarry_core.errors import PolicyError
from quarry_core.interfaces import IngestionPolicy, PolicyConfig, PolicyStats, Sink
from quarry_core.protocol.constants import DROPPABLE_EVENT_TYPES
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_core.testing.fakes import (
    ALL_EVENT_TYPES,
    MemorySink,
    make_artifact,
    make_event,
    policy_context,
)
from quarry_core.testing.integration_contracts import AdapterContract, EventSinkContract

__all__ = [
    "AdapterContract",
    "EventSinkContract",
    "PolicyContract",
    "check_chunks_before_commit",
    "check_loss_equation",
    "check_order",
    "feed",
]

Frame = Event | ArtifactChunk

_FLUSH_TRIGGER_KEYS = frozenset({"count", "interval", "termination", "capacity"})


# --------------------------------------------------------------------------- reusable checks


async def feed(policy: IngestionPolicy, frames: Iterable[Frame], *, group: int = 1) -> None:
    """Hand ``frames`` to ``policy`` in order, awaiting each call like the runtime does.

    ``group`` > 1 hands runs of up to that many consecutive events to ``ingest_events`` when the policy has it
    (CONTRACT_POLICY §1, group ingestion), as the runtime does with events that arrived together.
    """
    ingest_events = getattr(policy, "ingest_events", None) if group > 1 else None
    pending: list[Event] = []
    for frame in frames:
        if ingest_events is not None and isinstance(frame, Event):
            pending.append(frame)
            if len(pending) < group and not frame.is_terminal:
                continue
        if pending:
            group_of, pending = pending, []
            await ingest_events(group_of)  # type: ignore[misc]  # only filled when the policy has it
            if group_of[-1] is frame:
                continue
        if isinstance(frame, ArtifactChunk):
            await policy.ingest_chunk(frame)
        else:
            await policy.ingest_event(frame)
    if pending:
        await ingest_events(pending)  # type: ignore[misc]


def check_loss_equation(stats: PolicyStats) -> None:
    """Per event type and in total: ``received = persisted + dropped + unflushed``; only droppable drops."""
    types = set(stats.received_by_type) | set(stats.persisted_by_type) | set(stats.dropped_by_type)
    types |= set(stats.unflushed_by_type)
    for t in sorted(types):
        received = stats.received_by_type.get(t, 0)
        accounted = (
            stats.persisted_by_type.get(t, 0) + stats.dropped_by_type.get(t, 0) + stats.unflushed_by_type.get(t, 0)
        )
        assert received == accounted, (
            f"{t}: received {received} != persisted {stats.persisted_by_type.get(t, 0)} + dropped "
            f"{stats.dropped_by_type.get(t, 0)} + unflushed {stats.unflushed_by_type.get(t, 0)}"
        )
    assert stats.events_received == sum(stats.received_by_type.values())
    assert stats.events_persisted == sum(stats.persisted_by_type.values())
    assert stats.events_dropped == sum(stats.dropped_by_type.values())
    assert stats.events_dropped == sum(stats.dropped_by_reason.values())
    assert stats.events_unflushed == sum(stats.unflushed_by_type.values())
    assert stats.events_received == stats.events_persisted + stats.events_dropped + stats.events_unflushed
    for t, n in stats.dropped_by_type.items():
        assert n == 0 or t in DROPPABLE_EVENT_TYPES, f"non-droppable {t} events were dropped"


def check_order(sink: MemorySink) -> None:
    """Persisted events are in ``seq`` order across and within commits.

    Re-sent copies (at-least-once duplicates) are ignored: the first copy of each event decides.
    """
    last = 0
    seen: set[str] = set()
    for event in sink.events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        assert event.seq > last, f"seq {event.seq} committed after seq {last}"
        last = event.seq


def check_chunks_before_commit(sink: MemorySink) -> None:
    """Every chunk of an artifact is first committed strictly before the first commit holding its ``artifact``
    record, and a committed record has all its chunks committed (up to the ``is_last`` one)."""
    first_record: dict[str, int] = {}
    for commit in sink.event_commits:
        for event in commit.items:
            if event.type == "artifact":
                first_record.setdefault(event.payload["artifact_id"], commit.index)
    first_chunk: dict[tuple[str, int], int] = {}
    last_seq: dict[str, int] = {}
    for commit in sink.chunk_commits:
        for chunk in commit.items:
            first_chunk.setdefault((chunk.artifact_id, chunk.seq), commit.index)
            if chunk.is_last:
                last_seq[chunk.artifact_id] = chunk.seq
    for (aid, seq), index in first_chunk.items():
        record_at = first_record.get(aid)
        if record_at is not None:
            assert index < record_at, (
                f"chunk {seq} of artifact {aid} first committed at {index}, its artifact record at {record_at}"
            )
    for aid in first_record:
        assert aid in last_seq, f"artifact {aid} committed without its last chunk"
        missing = [n for n in range(1, last_seq[aid] + 1) if (aid, n) not in first_chunk]
        assert not missing, f"artifact {aid} committed without chunks {missing}"


def _standard_stream(start: int = 1) -> list[Frame]:
    """All eight event types, one two-chunk artifact, in a realistic order."""
    seq = start
    frames: list[Frame] = []
    for t in ALL_EVENT_TYPES:
        if t == "artifact":
            chunks, record = make_artifact(seq, [b"hello ", b"world"])
            frames.extend(chunks)
            frames.append(record)
        else:
            frames.append(make_event(seq, t))
        seq += 1
    return frames


def _mixed_stream(n: int, start: int = 1) -> list[Frame]:
    """``n`` events cycling through all types; every artifact has ``1 + seq % 3`` chunks."""
    frames: list[Frame] = []
    body = [t for t in ALL_EVENT_TYPES if t not in ("run_error", "run_complete")]
    for i in range(n):
        seq = start + i
        t = body[i % len(body)]
        if t == "artifact":
            chunks, record = make_artifact(seq, [bytes([seq % 256]) * 10] * (1 + seq % 3))
            frames.extend(chunks)
            frames.append(record)
        else:
            frames.append(make_event(seq, t))
    return frames


# --------------------------------------------------------------------------- the policy suite


class PolicyContract:
    """Conformance suite of :class:`~quarry_core.interfaces.IngestionPolicy` implementations (policies.md §8).

    Subclass it in a ``Test*`` class and set ``config`` plus ``factory`` (or override ``make_policy``).
    ``config`` must be a working configuration for your policy; tests override ``max_flush_retries`` only.
    """

    #: A valid configuration of the policy under test.
    config: ClassVar[PolicyConfig]
    #: ``(PolicyConfig, Sink, PolicyContext) -> IngestionPolicy``; used by the default :meth:`make_policy`.
    factory: ClassVar[Callable[..., IngestionPolicy] | None] = None
    #: Upper bound of one test's async part, in seconds.
    timeout: ClassVar[float] = 60.0

    # ------------------------------------------------------------------ hooks for subclasses

    def make_config(self, **overrides: Any) -> PolicyConfig:
        return attrs.evolve(self.config, **overrides) if overrides else self.config

    def make_policy(self, config: PolicyConfig, sink: Sink) -> IngestionPolicy:
        factory = type(self).factory
        if factory is None:
            raise NotImplementedError(f"{type(self).__name__} must set `factory` or override `make_policy`")
        return factory(config, sink, policy_context(config.name))

    def make_sink(self) -> MemorySink:
        return MemorySink()

    # ------------------------------------------------------------------ helpers

    def run(self, fn: Callable[[], Awaitable[None]]) -> None:
        async def bounded() -> None:
            await asyncio.wait_for(fn(), self.timeout)

        asyncio.run(bounded())

    async def _finish(self, policy: IngestionPolicy) -> None:
        await policy.flush("termination")
        await policy.close()

    # ------------------------------------------------------------------ tests

    def test_implements_protocol(self) -> None:
        async def body() -> None:
            policy = self.make_policy(self.make_config(), self.make_sink())
            assert isinstance(policy, IngestionPolicy)
            assert isinstance(policy.name, str)
            assert policy.name
            assert isinstance(policy.stats(), PolicyStats)
            await policy.close()

        self.run(body)

    def test_every_event_type_persisted_or_dropped(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            frames = _standard_stream()
            await feed(policy, frames)
            await self._finish(policy)
            stats = policy.stats()
            written = Counter(e.type for e in sink.events)
            for t in ALL_EVENT_TYPES:
                if t in DROPPABLE_EVENT_TYPES:
                    assert written[t] + stats.dropped_by_type.get(t, 0) >= 1, f"{t} neither persisted nor dropped"
                else:
                    assert written[t] >= 1, f"{t} event not persisted"
            assert stats.events_unflushed == 0
            sent = [f for f in frames if isinstance(f, Event)]
            assert {e.event_id for e in sink.events} | _dropped_ids(sent, stats) >= {
                e.event_id for e in sent if e.type not in DROPPABLE_EVENT_TYPES
            }
            assert sink.chunks == [f for f in frames if isinstance(f, ArtifactChunk)]
            for original in sent:  # never altered
                assert all(e == original for e in sink.events if e.event_id == original.event_id)

        self.run(body)

    def test_order_and_chunks_before_commit(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            frames = _mixed_stream(240)
            await feed(policy, frames)
            await self._finish(policy)
            check_order(sink)
            check_chunks_before_commit(sink)
            assert [e.seq for e in sink.events] == sorted({e.seq for e in sink.events})
            sent = [f for f in frames if isinstance(f, Event)]
            persisted = [e.seq for e in sink.events]
            expected = [e.seq for e in sent if e.seq in set(persisted)]
            assert persisted == expected
            for i, commit in enumerate(sink.commits):
                assert commit.index == i

        self.run(body)

    def test_loss_equation(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            frames = _standard_stream() + _mixed_stream(60, start=len(ALL_EVENT_TYPES) + 1)
            await feed(policy, frames)
            check_loss_equation(policy.stats())  # mid-run too (buffered events are not yet unflushed)
            await self._finish(policy)
            stats = policy.stats()
            check_loss_equation(stats)
            sent = Counter(f.type for f in frames if isinstance(f, Event))
            assert dict(stats.received_by_type) == dict(sent)
            assert _same_nonzero(stats.persisted_by_type, Counter(e.type for e in sink.events))

        self.run(body)

    def test_stats_after_five_events_three_chunks_one_flush(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            chunks, record = make_artifact(3, [b"a" * 10, b"b" * 10, b"c" * 5])
            frames: list[Frame] = [make_event(1, "item"), make_event(2, "checkpoint"), *chunks, record]
            frames += [make_event(4, "item"), make_event(5, "run_complete")]
            await feed(policy, frames)
            await policy.flush("termination")
            stats = policy.stats()
            assert stats.events_received == 5
            assert stats.events_persisted == 5
            assert stats.events_dropped == 0
            assert stats.events_unflushed == 0
            assert stats.chunks_received == 3
            assert stats.chunks_persisted == 3
            assert stats.buffered_events == 0
            assert stats.buffered_bytes == 0
            # one flush() call; a policy may also count flushes it fired itself (thresholds, capacity)
            assert stats.flush_count >= 1
            assert stats.flush_failures == 0
            assert stats.errors == 0
            assert dict(stats.received_by_type) == {
                "item": 2,
                "checkpoint": 1,
                "artifact": 1,
                "run_complete": 1,
            }
            assert _same_nonzero(stats.persisted_by_type, stats.received_by_type)
            assert not any(stats.dropped_by_type.values())
            assert not any(stats.unflushed_by_type.values())
            if stats.flush_triggers is not None:
                assert set(stats.flush_triggers) == _FLUSH_TRIGGER_KEYS
                assert stats.flush_triggers["termination"] == 1
                assert stats.flush_count == sum(stats.flush_triggers.values())
            else:
                assert stats.flush_count == 1
            assert len(sink.events) == 5
            assert len(sink.chunks) == 3
            await policy.close()

        self.run(body)

    def test_stats_is_an_immutable_snapshot(self) -> None:
        async def body() -> None:
            policy = self.make_policy(self.make_config(), self.make_sink())
            await policy.ingest_event(make_event(1, "item"))
            before = policy.stats()
            received = dict(before.received_by_type)
            await policy.ingest_event(make_event(2, "item"))
            await policy.flush("termination")
            assert before.events_received == 1
            assert dict(before.received_by_type) == received
            with _raises(attrs.exceptions.FrozenInstanceError):
                before.events_received = 99  # type: ignore[misc]
            assert policy.stats().events_received == 2
            await policy.close()

        self.run(body)

    def test_flush_count_counts_empty_flushes(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            await policy.flush("termination")
            await policy.flush("termination")
            stats = policy.stats()
            assert stats.flush_count == 2
            assert sink.commits == []
            assert stats.flush_failures == 0
            if stats.flush_triggers is not None:
                assert set(stats.flush_triggers) == _FLUSH_TRIGGER_KEYS
            await policy.close()

        self.run(body)

    def test_policy_error_within_retry_budget(self) -> None:
        for retries in (0, 2):
            self._check_retry_budget(retries)

    def _check_retry_budget(self, retries: int) -> None:
        async def body() -> None:
            sink = self.make_sink()
            sink.fail(None)
            policy = self.make_policy(self.make_config(max_flush_retries=retries), sink)
            failures = 0
            flushes = 0
            started = time.monotonic()
            try:
                await policy.ingest_event(make_event(1, "item"))
            except PolicyError:
                failures += 1
            try:
                flushes += 1
                await policy.flush("termination")
            except PolicyError:
                failures += 1
            elapsed = time.monotonic() - started
            assert failures >= 1, "no PolicyError although every write failed"
            event_calls = [c for c in sink.calls if c[0] == "events"]
            assert 1 <= len(event_calls) <= retries + 1, (
                f"{len(event_calls)} event write attempts with max_flush_retries={retries}"
            )
            # backoff 100 ms * 2^(i-1): 0 s for no retry, 0.3 s for two; allow generous slack
            assert elapsed < 0.1 * (2**retries - 1) + 5.0
            await policy.close()
            stats = policy.stats()
            assert stats.errors >= 1
            assert stats.flush_count == flushes
            assert stats.events_persisted == 0
            assert stats.events_unflushed == 1
            assert dict(stats.unflushed_by_type) == {"item": 1}
            check_loss_equation(stats)
            assert sink.commits == []
            assert sink.close_calls == 1

        self.run(body)

    def test_transient_failures_within_budget_lose_nothing(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            sink.fail(2)
            policy = self.make_policy(self.make_config(max_flush_retries=3), sink)
            events = [make_event(i, "item") for i in range(1, 6)]
            await feed(policy, events)
            await self._finish(policy)
            stats = policy.stats()
            assert stats.write_retries >= 1
            assert stats.errors == 0
            assert stats.events_unflushed == 0
            assert sorted({e.seq for e in sink.events}) == [1, 2, 3, 4, 5]
            check_order(sink)
            check_loss_equation(stats)

        self.run(body)

    def test_grouped_ingestion_matches_one_at_a_time(self) -> None:
        """``ingest_events`` (optional) stores what ``ingest_event`` one at a time stores, in the same order, with
        the same counters; only the number of commits may differ. Without it there is nothing to compare."""

        async def outcome(group: int) -> tuple[list[str], dict[str, Any]]:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            frames = _standard_stream() + _mixed_stream(120, start=len(ALL_EVENT_TYPES) + 1)
            await feed(policy, frames, group=group)
            await self._finish(policy)
            stats = policy.stats()
            check_loss_equation(stats)
            check_order(sink)
            check_chunks_before_commit(sink)
            assert sink.chunks == [f for f in frames if isinstance(f, ArtifactChunk)]
            firsts = list(dict.fromkeys(e.event_id for e in sink.events))
            counts = {
                "received": dict(stats.received_by_type),
                "persisted": _nonzero(stats.persisted_by_type),
                "unflushed": stats.events_unflushed,
                "chunks": (stats.chunks_received, stats.chunks_persisted),
            }
            return firsts, counts

        async def body() -> None:
            probe = self.make_policy(self.make_config(), self.make_sink())
            await probe.close()
            if not hasattr(probe, "ingest_events"):
                return
            one = await outcome(1)
            for group in (3, 64):
                assert await outcome(group) == one, f"groups of {group} stored something else"

        self.run(body)

    def test_a_failed_group_counts_each_of_its_events(self) -> None:
        """A group that cannot be written leaves every one of its events received and unflushed."""

        async def body() -> None:
            sink = self.make_sink()
            sink.fail(None)
            policy = self.make_policy(self.make_config(max_flush_retries=0), sink)
            if not hasattr(policy, "ingest_events"):
                await policy.close()
                return
            events = [make_event(1, "item"), make_event(2, "checkpoint"), make_event(3, "item")]
            failed = False
            try:
                await policy.ingest_events(events)  # type: ignore[attr-defined]
                await policy.flush("termination")
            except PolicyError:
                failed = True
            await policy.close()
            stats = policy.stats()
            assert failed, "no PolicyError although every write failed"
            check_loss_equation(stats)
            assert stats.events_received == 3
            assert stats.events_persisted == 0
            assert dict(stats.unflushed_by_type) == {"item": 2, "checkpoint": 1}
            assert sink.commits == []

        self.run(body)

    def test_close_is_idempotent(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            await feed(policy, _standard_stream())
            await policy.flush("termination")
            await policy.flush("termination")  # the final flush is idempotent too
            written = len(sink.events)
            await policy.close()
            await policy.close()
            assert sink.close_calls == 1
            assert len(sink.events) == written
            stats = policy.stats()
            check_loss_equation(stats)
            assert stats.events_unflushed == 0

        self.run(body)

    def test_close_without_flush_loses_nothing_silently(self) -> None:
        async def body() -> None:
            sink = self.make_sink()
            policy = self.make_policy(self.make_config(), sink)
            await feed(policy, [make_event(1, "item"), make_event(2, "checkpoint")])
            await policy.close()
            stats = policy.stats()
            check_loss_equation(stats)
            assert sink.close_calls == 1

        self.run(body)


# --------------------------------------------------------------------------- small helpers


def _nonzero(counts: Any) -> dict[str, int]:
    return {k: v for k, v in dict(counts).items() if v}


def _same_nonzero(a: Any, b: Any) -> bool:
    return _nonzero(a) == _nonzero(b)


def _dropped_ids(sent: Sequence[Event], stats: PolicyStats) -> set[str]:
    # drops are counted, not listed; a droppable event missing from the sink is accounted by the counters
    return {e.event_id for e in sent if e.type in DROPPABLE_EVENT_TYPES and stats.dropped_by_type.get(e.type)}


class _raises:
    """Tiny ``pytest.raises`` stand-in so importing this module does not import pytest."""

    def __init__(self, exc: type[BaseException]) -> None:
        self.exc = exc

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: Any) -> bool:
        if et is None:
            raise AssertionError(f"{self.exc.__name__} not raised")
        return issubclass(et, self.exc)
