"""Unit tests of the streaming policy (policies.md §6)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quarry_core.errors import PolicyError
from quarry_core.protocol.frames import Event
from quarry_core.testing.fakes import LogCapture, MemorySink, make_artifact, make_chunk, make_event
from quarry_policy_buffered import STREAMING_BYTE_CAP, STREAMING_ITEM_CAP, event_size
from quarry_policy_buffered_tests.helpers import Sleeps, streaming

pytestmark = pytest.mark.anyio

ALL_TRIGGERS = {"count", "interval", "termination", "capacity"}


def test_internal_caps() -> None:
    assert STREAMING_ITEM_CAP == 50_000
    assert STREAMING_BYTE_CAP == 128 * 1024 * 1024


async def test_flush_count_three() -> None:
    sink = MemorySink()
    policy = streaming(sink, flush_count=3)
    await policy.ingest_event(make_event(1))
    await policy.ingest_event(make_event(2))
    assert sink.calls == []
    await policy.ingest_event(make_event(3))  # flushes inside the ingest call
    assert [[e.seq for e in c.items] for c in sink.commits] == [[1, 2, 3]]
    stats = policy.stats()
    assert stats.flush_triggers == {"count": 1, "interval": 0, "termination": 0, "capacity": 0}
    assert stats.flush_count == 1
    assert stats.buffered_events == 0


async def test_chunks_do_not_count_toward_flush_count() -> None:
    sink = MemorySink()
    policy = streaming(sink, flush_count=2)
    chunks, record = make_artifact(2, [b"a", b"b", b"c"])
    await policy.ingest_event(make_event(1))
    for chunk in chunks:
        await policy.ingest_chunk(chunk)
    assert sink.calls == []
    await policy.ingest_event(record)
    assert [c.kind for c in sink.commits] == ["chunks", "events"]
    assert [e.seq for e in sink.events] == [1, 2]


async def test_flush_triggers_has_all_keys_from_the_start() -> None:
    policy = streaming(MemorySink(), flush_interval=10)
    triggers = policy.stats().flush_triggers
    assert triggers is not None
    assert set(triggers) == ALL_TRIGGERS
    assert not any(triggers.values())
    await policy.close()


async def test_empty_termination_flush_counts_without_a_sink_call() -> None:
    sink = MemorySink()
    policy = streaming(sink, flush_count=5)
    await policy.flush()
    await policy.flush("termination")
    stats = policy.stats()
    assert sink.calls == []
    assert stats.flush_count == 2
    assert stats.flush_triggers is not None
    assert stats.flush_triggers["termination"] == 2


async def test_item_cap_triggers_a_capacity_flush() -> None:
    sink = MemorySink()
    policy = streaming(sink, flush_count=100, item_cap=3)
    await policy.ingest_event(make_event(1))
    await policy.ingest_chunk(make_chunk("a", 1, b"x"))
    assert sink.calls == []
    await policy.ingest_event(make_event(2))
    assert [c.kind for c in sink.commits] == ["chunks", "events"]
    assert policy.stats().flush_triggers == {"count": 0, "interval": 0, "termination": 0, "capacity": 1}


async def test_byte_cap_flushes_before_an_item_that_would_exceed_it() -> None:
    sink = MemorySink()
    policy = streaming(sink, flush_count=100, byte_cap=100)
    await policy.ingest_chunk(make_chunk("a", 1, b"x" * 60))
    assert sink.calls == []
    await policy.ingest_chunk(make_chunk("a", 2, b"x" * 60))  # would exceed: the buffer is flushed first
    assert [len(c.items) for c in sink.commits] == [1]
    assert policy.stats().buffered_bytes == 60
    await policy.ingest_chunk(make_chunk("b", 1, b"x" * 500))  # empty buffer: any item, then a cap is reached
    assert [len(c.items) for c in sink.commits] == [1, 1, 1]
    triggers = policy.stats().flush_triggers
    assert triggers is not None
    assert triggers["capacity"] == 3


async def test_event_bytes_count_toward_the_byte_cap() -> None:
    sink = MemorySink()
    event = make_event(1)
    policy = streaming(sink, flush_count=100, byte_cap=event_size(event) * 2)
    await policy.ingest_event(event)
    assert policy.stats().buffered_bytes == event_size(event)
    await policy.ingest_event(make_event(2))
    assert len(sink.events) == 2


async def test_interval_flushes_only_a_non_empty_buffer() -> None:
    sink = MemorySink()
    policy = streaming(sink, flush_interval=0.02)
    await policy.ingest_event(make_event(1))
    await asyncio.sleep(0.1)
    assert [e.seq for e in sink.events] == [1]
    await asyncio.sleep(0.1)
    stats = policy.stats()
    assert stats.flush_triggers is not None
    assert stats.flush_triggers["interval"] == 1  # later ticks found nothing and did not fire
    assert stats.flush_count == 1
    await policy.close()


async def test_interval_failure_warns_and_keeps_the_data(logs: LogCapture) -> None:
    sink = MemorySink()
    sink.fail(1)
    sleeps = Sleeps()
    policy = streaming(sink, sleeps, flush_interval=0.02)
    await policy.ingest_event(make_event(1))
    await asyncio.sleep(0.15)
    assert [e.seq for e in sink.events] == [1]
    assert logs.at("WARNING") == ["Warning: streaming interval flush failed: injected events write failure"]
    stats = policy.stats()
    assert stats.flush_failures == 1
    assert stats.write_retries == 0  # one attempt; the next tick is the retry
    assert sleeps.delays == []
    assert stats.errors == 0
    await policy.close()


async def test_count_flush_retries_then_raises() -> None:
    sink = MemorySink()
    sink.fail(None)
    sleeps = Sleeps()
    policy = streaming(sink, sleeps, flush_count=1, max_flush_retries=3)
    with pytest.raises(PolicyError, match=r"^streaming flush failed permanently after 3 retries: injected"):
        await policy.ingest_event(make_event(1))
    assert len(sink.calls) == 4
    assert sleeps.delays == [0.1, 0.2, 0.4]
    stats = policy.stats()
    assert stats.flush_failures == 4
    assert stats.write_retries == 3
    assert stats.errors == 1
    assert stats.buffered_events == 1
    await policy.close()
    assert policy.stats().events_unflushed == 1


async def test_chunk_failure_returns_both_parts_ahead_of_newer_items() -> None:
    sink = MemorySink()
    sink.fail(None, on="chunks")
    policy = streaming(sink, flush_count=1, max_flush_retries=1)
    chunks, record = make_artifact(1, [b"abc"])
    await policy.ingest_chunk(chunks[0])
    with pytest.raises(PolicyError):
        await policy.ingest_event(record)
    assert policy.stats().buffered_events == 1
    assert policy.stats().buffered_bytes == 3 + event_size(record)
    sink.heal()
    await policy.ingest_event(make_event(2))
    assert [c.kind for c in sink.commits] == ["chunks", "events"]
    assert [e.seq for e in sink.events] == [1, 2]
    assert policy.stats().chunks_persisted == 1


async def test_event_failure_after_chunk_success_returns_only_the_events() -> None:
    sink = MemorySink()
    sink.fail(None, on="events")
    policy = streaming(sink, flush_count=1, max_flush_retries=2)
    chunks, record = make_artifact(1, [b"abc"])
    await policy.ingest_chunk(chunks[0])
    with pytest.raises(PolicyError):
        await policy.ingest_event(record)
    assert len(sink.chunk_commits) == 1  # chunks_first: not re-sent on retry
    stats = policy.stats()
    assert stats.chunks_persisted == 1
    assert stats.buffered_bytes == event_size(record)
    sink.heal()
    await policy.flush()
    assert len(sink.chunk_commits) == 1
    assert [e.seq for e in sink.events] == [1]
    assert sink.commits[0].kind == "chunks"


async def test_flush_swaps_the_buffer_so_ingestion_continues() -> None:
    sink = MemorySink()
    sink.stall()
    policy = streaming(sink, flush_count=100)
    await policy.ingest_event(make_event(1))
    flushing = asyncio.create_task(policy.flush())
    await sink.wait_stalled()
    await policy.ingest_event(make_event(2))  # not blocked by the flush in progress
    assert policy.stats().buffered_events == 2  # one in flight, one waiting
    sink.release()
    await flushing
    await policy.flush()
    assert [[e.seq for e in c.items] for c in sink.commits] == [[1], [2]]


async def test_close_stops_the_interval_task_and_flushes_best_effort() -> None:
    sink = MemorySink()
    policy = streaming(sink, flush_interval=3600)
    await policy.ingest_event(make_event(1))
    task = policy._interval_task
    assert task is not None
    await policy.close()
    await policy.close()
    assert task.done()
    assert [e.seq for e in sink.events] == [1]
    assert sink.close_calls == 1
    stats = policy.stats()
    assert stats.flush_triggers is not None
    assert stats.flush_triggers["termination"] == 1
    with pytest.raises(PolicyError, match="closed"):
        await policy.ingest_event(make_event(2))


async def test_close_after_a_failed_final_flush_does_not_retry_again() -> None:
    sink = MemorySink()
    sink.fail(None)
    policy = streaming(sink, flush_count=10, max_flush_retries=1)
    await policy.ingest_event(make_event(1, "log"))
    with pytest.raises(PolicyError):
        await policy.flush()
    calls = len(sink.calls)
    await policy.close()
    assert len(sink.calls) == calls
    stats = policy.stats()
    assert dict(stats.unflushed_by_type) == {"log": 1}
    assert stats.events_dropped == 0


@given(
    types=st.lists(st.sampled_from(["item", "log", "checkpoint", "enqueue", "item"]), min_size=1, max_size=60),
    groups=st.lists(st.integers(1, 9), min_size=1, max_size=20),
    flush_count=st.integers(1, 12),
    item_cap=st.integers(2, 15),
    byte_cap_events=st.integers(1, 10),
    decoded=st.lists(st.booleans(), max_size=60),
)
@settings(max_examples=150, deadline=None)
def test_groups_take_what_one_at_a_time_takes(
    types: list[str], groups: list[int], flush_count: int, item_cap: int, byte_cap_events: int, decoded: list[bool]
) -> None:
    """Every counter, trigger, high-water mark and commit is the same whether the events arrive in groups
    (``ingest_events``, which takes a group whole when nothing in it meets a cap or a trigger) or one by one,
    and whether an event knows its frame's size (decoded: summed from ``wire_size``) or not (built in memory:
    encoded to learn it), also both in one group."""
    events = [make_event(i + 1, t) for i, t in enumerate(types)]
    byte_cap = byte_cap_events * max(event_size(e) for e in events)
    as_decoded = [
        Event.from_wire(e.to_wire(), wire_size=event_size(e)) if i < len(decoded) and decoded[i] else e
        for i, e in enumerate(events)
    ]
    assert all(a == e and event_size(a) == event_size(e) for a, e in zip(as_decoded, events, strict=True))

    async def outcome(sizes: list[int], events: list[Event] = events) -> tuple[object, list[list[int]]]:
        sink = MemorySink()
        policy = streaming(sink, flush_count=flush_count, item_cap=item_cap, byte_cap=byte_cap)
        i = 0
        k = 0
        while i < len(events):
            n = sizes[k % len(sizes)]
            await policy.ingest_events(events[i : i + n])
            i += n
            k += 1
        stats = policy.stats()
        await policy.close()
        return stats, [[e.seq for e in c.items] for c in sink.commits]

    assert asyncio.run(outcome(groups)) == asyncio.run(outcome([1])) == asyncio.run(outcome(groups, as_decoded))
