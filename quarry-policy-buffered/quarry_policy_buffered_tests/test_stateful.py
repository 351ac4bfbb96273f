"""Hypothesis stateful test: arbitrary event streams against arbitrary sink failures.

Whatever happens, at run end (``flush("termination")`` then ``close()``):

- per type, received = persisted + dropped + unflushed, and only droppable types are dropped;
- persisted events are in arrival order (first copies, duplicates aside) and every one was sent unchanged;
- all chunks of an artifact are committed strictly before the commit holding its record;
- under ``two_phase`` nothing is written twice (Lode-style idempotent snapshot ids); ``buffered`` never
  duplicates chunks under ``chunks_first``; only an ambiguous failure (commit, then an error) duplicates
  chunks in ``streaming``, whose returned data is re-flushed under new snapshot ids;
- without injected failures nothing is unflushed and what is counted persisted is exactly what the sink holds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from quarry_core.errors import PolicyError
from quarry_core.interfaces import IngestionPolicy, PolicyConfig
from quarry_core.protocol.constants import DROPPABLE_EVENT_TYPES
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_core.testing.contracts import check_chunks_before_commit, check_loss_equation, check_order
from quarry_core.testing.fakes import MemorySink, make_artifact, make_event, policy_context
from quarry_core.testing.strategies import event_types
from quarry_policy_buffered import FLUSH_MODES, BufferedPolicy, StreamingPolicy


async def yielding_sleep(seconds: float) -> None:
    """Instant backoff that still lets other tasks run, so pressure and backpressure really happen."""
    await asyncio.sleep(0)


buffered_configs = st.builds(
    lambda be, bb, mode, retries, batch: PolicyConfig(
        name="buffered",
        buffer_events=be,
        buffer_bytes=bb,
        batch_events=min(batch, be) if batch is not None and be else None,
        flush_mode=mode,
        max_flush_retries=retries,
    ),
    st.integers(0, 8),
    st.sampled_from([0, 300, 1000, 5000]),
    st.sampled_from(FLUSH_MODES),
    st.integers(0, 3),
    st.none() | st.integers(0, 8),
).filter(lambda c: c.buffer_events > 0 or c.buffer_bytes > 0)

streaming_configs = st.builds(
    lambda count, retries: PolicyConfig(name="streaming", flush_count=count, max_flush_retries=retries),
    st.integers(1, 6),
    st.integers(0, 3),
)


class PolicyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.sink = MemorySink()
        self.policy: IngestionPolicy | None = None
        self.config: PolicyConfig | None = None
        self.seq = 0
        self.sent: list[Event] = []
        self.sent_chunks: list[ArtifactChunk] = []
        self.stopped = False  # a PolicyError ends the run, as in the runtime
        self.failures_injected = False
        self.ambiguous_injected = False

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 20))

    @initialize(config=st.one_of(buffered_configs, streaming_configs), item_cap=st.sampled_from([3, 7, 50_000]))
    def build(self, config: PolicyConfig, item_cap: int) -> None:
        self.config = config
        context = policy_context(config.name)
        if config.name == "buffered":
            self.policy = BufferedPolicy(config, self.sink, context, sleep=yielding_sleep)
        else:
            self.policy = StreamingPolicy(config, self.sink, context, sleep=yielding_sleep, item_cap=item_cap)

    # ------------------------------------------------------------------ rules

    @precondition(lambda self: not self.stopped)
    @rule(etype=event_types(), chunks=st.integers(1, 3))
    def ingest(self, etype: str, chunks: int) -> None:
        assert self.policy is not None
        self.seq += 1
        frames: list[Event | ArtifactChunk]
        if etype == "artifact":
            parts, record = make_artifact(self.seq, [bytes([self.seq % 256]) * 40] * chunks)
            frames = [*parts, record]
        else:
            frames = [make_event(self.seq, etype)]
        for frame in frames:
            if isinstance(frame, ArtifactChunk):
                self.sent_chunks.append(frame)
                call = self.policy.ingest_chunk(frame)
            else:
                self.sent.append(frame)
                call = self.policy.ingest_event(frame)
            try:
                self.run(call)
            except PolicyError:
                self.stopped = True
                return

    @precondition(lambda self: not self.stopped)
    @rule(etypes=st.lists(event_types().filter(lambda t: t != "artifact"), min_size=1, max_size=12))
    def ingest_group(self, etypes: list[str]) -> None:
        """Events that arrived together, through ``ingest_events`` when the policy has it (CONTRACT_POLICY §1)."""
        assert self.policy is not None
        group = []
        for etype in etypes:
            self.seq += 1
            group.append(make_event(self.seq, etype))
        ingest_events = getattr(self.policy, "ingest_events", None)
        try:
            if ingest_events is not None:
                self.sent.extend(group)  # handed over together: all received, whatever happens
                self.run(ingest_events(group))
            else:  # one at a time, as the runtime feeds such a policy: a failure ends the run
                for event in group:
                    self.sent.append(event)
                    self.run(self.policy.ingest_event(event))
        except PolicyError:
            self.stopped = True

    @rule(
        times=st.none() | st.integers(1, 4),
        on=st.sampled_from(["any", "events", "chunks"]),
        ambiguous=st.booleans(),
    )
    def fail(self, times: int | None, on: str, ambiguous: bool) -> None:
        self.sink.fail(times, on=on, ambiguous=ambiguous)  # type: ignore[arg-type]
        self.failures_injected = True
        self.ambiguous_injected |= ambiguous

    @rule(steps=st.integers(0, 40))
    def slow(self, steps: int) -> None:
        self.sink.slow(steps)

    @rule()
    def heal(self) -> None:
        self.sink.heal()

    @precondition(lambda self: not self.stopped)
    @rule()
    def flush(self) -> None:
        assert self.policy is not None
        try:
            self.run(self.policy.flush("termination"))
        except PolicyError:
            self.stopped = True

    @rule(steps=st.integers(1, 10))
    def settle(self, steps: int) -> None:
        async def spin() -> None:
            for _ in range(steps):
                await asyncio.sleep(0)

        self.run(spin())

    @invariant()
    def accounting_always_balances(self) -> None:
        if self.policy is not None:
            stats = self.policy.stats()
            check_loss_equation(stats)
            assert dict(stats.received_by_type) == dict(Counter(e.type for e in self.sent))
            assert stats.chunks_received == len(self.sent_chunks)

    # ------------------------------------------------------------------ run end

    def teardown(self) -> None:
        try:
            if self.policy is not None:
                self.finish()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def finish(self) -> None:
        assert self.policy is not None
        assert self.config is not None
        try:
            self.run(self.policy.flush("termination"))
        except PolicyError:
            pass
        self.run(self.policy.close())
        self.run(self.policy.close())
        stats = self.policy.stats()
        sink = self.sink
        assert sink.close_calls == 1
        check_loss_equation(stats)
        assert dict(stats.received_by_type) == dict(Counter(e.type for e in self.sent))
        assert stats.chunks_received == len(self.sent_chunks)
        if self.config.name == "streaming":
            assert stats.events_dropped == 0
            assert stats.flush_triggers is not None
            assert set(stats.flush_triggers) == {"count", "interval", "termination", "capacity"}

        # what the sink holds was sent, unchanged, in arrival order, chunks before their records
        by_id = {e.event_id: e for e in self.sent}
        for event in sink.events:
            assert by_id[event.event_id] == event
        check_order(sink)
        check_chunks_before_commit(sink)
        sent_chunks = set(self.sent_chunks)
        assert all(chunk in sent_chunks for chunk in sink.chunks)

        distinct = {e.event_id: e.type for e in sink.events}
        in_sink = Counter(distinct.values())
        for t, received in stats.received_by_type.items():
            assert in_sink[t] + stats.dropped_by_type.get(t, 0) <= received  # dropped ones never written
            assert stats.persisted_by_type.get(t, 0) <= in_sink[t]  # counted persisted = really written
        for t in stats.dropped_by_type:
            assert t in DROPPABLE_EVENT_TYPES

        mode = "chunks_first" if self.config.name == "streaming" else self.config.flush_mode
        if mode == "two_phase":
            assert len(sink.events) == len(distinct), "an event was written twice under two_phase"
        if self.config.name == "buffered" and mode in ("two_phase", "chunks_first"):
            assert len(sink.chunks) == len(set(sink.chunks)), f"a chunk was written twice under {mode}"
        if not self.ambiguous_injected:
            assert len(sink.chunks) == len(set(sink.chunks)) or mode == "at_least_once"
        if not self.ambiguous_injected:
            assert len(sink.events) == len(distinct) or mode == "at_least_once"
            assert dict(stats.persisted_by_type) == {t: n for t, n in in_sink.items() if n}
        if not self.failures_injected:
            assert stats.events_unflushed == 0
            assert stats.errors == 0
            assert stats.chunks_persisted == stats.chunks_received
            assert len(sink.events) == len(distinct)


TestPolicyMachine = PolicyMachine.TestCase
TestPolicyMachine.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
