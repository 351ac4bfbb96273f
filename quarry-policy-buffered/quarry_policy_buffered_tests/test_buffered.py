"""Unit tests of the buffered policy: every row of policies.md §5.6 and the rules of §5.2-§5.5 and §7."""

from __future__ import annotations

import asyncio

import pytest

from quarry_core.errors import PolicyError
from quarry_core.testing.fakes import LogCapture, MemorySink, make_artifact, make_chunk, make_event
from quarry_policy_buffered import event_size
from quarry_policy_buffered_tests.helpers import Sleeps, buffered

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- §5.6 examples


async def test_stalled_sink_full_buffer_drops_a_log(logs: LogCapture) -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=3, batch_events=3)
    for seq in (1, 2, 3):
        await policy.ingest_event(make_event(seq, "item"))
    await sink.wait_stalled()
    assert sink.calls == [("events", 3, sink.calls[0][2])]  # the three items are in flight
    await policy.ingest_event(make_event(4, "log"))
    stats = policy.stats()
    assert dict(stats.dropped_by_type) == {"log": 1}
    assert dict(stats.dropped_by_reason) == {"buffer_full": 1}
    assert stats.buffered_events == 3
    assert logs.at("WARNING") == ["Warning: buffered policy dropped log event (seq 4): buffer_full"]
    sink.release()
    await policy.flush()
    await policy.close()


async def test_stalled_sink_full_buffer_makes_an_item_wait(logs: LogCapture) -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=3, batch_events=3)
    for seq in (1, 2, 3):
        await policy.ingest_event(make_event(seq, "item"))
    await sink.wait_stalled()
    await policy.ingest_event(make_event(4, "log"))
    waiting = asyncio.create_task(policy.ingest_event(make_event(5, "item")))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # backpressure until the batch commits
    assert "Warning: buffered policy: buffer full, applying backpressure" in logs.at("WARNING")
    sink.release()
    await asyncio.wait_for(waiting, 5)
    assert [e.seq for e in sink.events] == [1, 2, 3]
    await policy.flush()
    await policy.close()
    assert [e.seq for e in sink.events] == [1, 2, 3, 5]
    stats = policy.stats()
    assert stats.events_persisted == 4
    assert stats.events_dropped == 1
    assert stats.events_unflushed == 0
    assert logs.count("Warning: buffered policy: buffer full") == 1


async def test_event_limit_only_accepts_a_20_mib_artifact() -> None:
    sink = MemorySink()
    policy = buffered(sink, buffer_events=100)
    chunks, record = make_artifact(1, [b"a" * (8 * MiB), b"b" * (8 * MiB), b"c" * (4 * MiB)])
    for chunk in chunks:
        await policy.ingest_chunk(chunk)
    await policy.ingest_event(record)
    await policy.ingest_event(make_event(2, "run_complete"))
    await policy.flush()
    await policy.close()
    stats = policy.stats()
    assert stats.chunks_persisted == 3
    assert stats.events_persisted == 2
    assert stats.errors == 0
    assert sum(len(c.data) for c in sink.chunks) == 20 * MiB


async def test_always_failing_sink_fails_after_four_attempts(logs: LogCapture) -> None:
    sink = MemorySink()
    sink.fail(None)
    sleeps = Sleeps()
    policy = buffered(sink, sleeps, buffer_events=100, max_flush_retries=3)
    for seq in range(1, 11):
        await policy.ingest_event(make_event(seq, "item"))
    with pytest.raises(PolicyError, match=r"^buffered flush failed permanently after 3 retries: injected"):
        await policy.flush("termination")
    assert len(sink.calls) == 4
    assert sleeps.delays == [0.1, 0.2, 0.4]
    warnings = logs.at("WARNING")
    assert [w.split(":")[1].strip() for w in warnings] == [
        f"buffered flush failed (attempt {k}/4)" for k in range(1, 5)
    ]
    assert any(m.startswith("buffered flush failed permanently after 3 retries") for m in logs.at("ERROR"))
    with pytest.raises(PolicyError, match="permanently"):
        await policy.ingest_event(make_event(11, "item"))
    with pytest.raises(PolicyError, match="permanently"):
        await policy.ingest_chunk(make_chunk("a"))
    await policy.close()
    stats = policy.stats()
    assert stats.events_unflushed == 11
    assert dict(stats.unflushed_by_type) == {"item": 11}
    assert stats.events_persisted == 0
    assert stats.flush_failures == 4
    assert stats.write_retries == 3
    assert stats.errors == 1
    assert stats.flush_count == 1
    assert sink.close_calls == 1


# --------------------------------------------------------------------------- accounting and batching


async def test_event_size_is_the_cbor_payload_length() -> None:
    from quarry_core.protocol.codec import encode_map

    sink = MemorySink()
    policy = buffered(sink, buffer_events=100)
    events = [make_event(seq, t) for seq, t in enumerate(["item", "log", "checkpoint"], start=1)]
    for event in events:
        await policy.ingest_event(event)
    await policy.ingest_chunk(make_chunk("x", data=b"12345"))
    stats = policy.stats()
    assert event_size(events[0]) == len(encode_map(events[0].to_wire()))
    assert stats.buffered_events == 3
    assert stats.buffered_bytes == sum(event_size(e) for e in events) + 5
    assert stats.buffer_high_water_events == 3
    assert stats.buffer_high_water_bytes == stats.buffered_bytes


async def test_writer_forms_a_batch_at_the_event_threshold() -> None:
    sink = MemorySink()
    policy = buffered(sink, buffer_events=10)  # batch_events derived: 5
    for seq in range(1, 5):
        await policy.ingest_event(make_event(seq))
    await settle()
    assert sink.commits == []
    await policy.ingest_event(make_event(5))
    await settle()
    assert [len(c.items) for c in sink.commits] == [5]
    for seq in range(6, 13):
        await policy.ingest_event(make_event(seq))
    await settle()
    await policy.flush()
    assert [len(c.items) for c in sink.commits] == [5, 5, 2]
    stats = policy.stats()
    assert stats.flush_triggers == {"count": 2, "interval": 0, "termination": 1, "capacity": 0}
    assert stats.flush_count == 3  # two threshold firings and the flush() call


async def test_an_ingest_out_of_room_below_the_threshold_fires_a_capacity_flush() -> None:
    sink = MemorySink()
    limit = 3 * event_size(make_event(1)) + 10
    policy = buffered(sink, buffer_events=4, batch_events=4, buffer_bytes=limit, batch_bytes=limit)
    for seq in (1, 2, 3):
        await policy.ingest_event(make_event(seq))
    await settle()
    assert sink.commits == []  # below both thresholds
    await policy.ingest_event(make_event(4))  # no room in bytes: the writer must make some
    await policy.flush()
    stats = policy.stats()
    assert [e.seq for e in sink.events] == [1, 2, 3, 4]
    assert stats.flush_triggers is not None and stats.flush_triggers["capacity"] == 1
    assert stats.flush_count == sum(stats.flush_triggers.values())


async def test_writer_forms_a_batch_at_the_byte_threshold() -> None:
    sink = MemorySink()
    policy = buffered(sink, buffer_bytes=1000)  # batch_bytes derived: 500
    await policy.ingest_chunk(make_chunk("a", 1, b"x" * 300))
    await settle()
    assert sink.commits == []
    await policy.ingest_chunk(make_chunk("a", 2, b"x" * 300, is_last=True))
    await settle()
    assert [c.kind for c in sink.commits] == ["chunks"]


async def test_batch_writes_chunks_then_events_in_arrival_order() -> None:
    sink = MemorySink()
    policy = buffered(sink, buffer_events=100)
    chunks, record = make_artifact(2, [b"a", b"b"])
    await policy.ingest_event(make_event(1, "item"))
    for chunk in chunks:
        await policy.ingest_chunk(chunk)
    await policy.ingest_event(record)
    await policy.ingest_event(make_event(3, "log"))
    await policy.flush()
    assert [c.kind for c in sink.commits] == ["chunks", "events"]
    assert [e.seq for e in sink.events] == [1, 2, 3]
    assert sink.chunks == chunks


async def test_empty_buffer_accepts_an_oversized_item() -> None:
    sink = MemorySink()
    policy = buffered(sink, buffer_bytes=10)
    await policy.ingest_chunk(make_chunk("a", 1, b"x" * 100))
    await policy.ingest_event(make_event(1, "item"))  # waits for the chunk's batch, then fits
    await policy.flush()
    assert policy.stats().chunks_persisted == 1
    assert policy.stats().events_persisted == 1


async def test_chunks_without_byte_limit_are_bounded_by_the_internal_cap() -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=100)
    policy._chunk_cap = 100  # the 128 MiB cap, scaled down
    await policy.ingest_chunk(make_chunk("a", 1, b"x" * 60))
    pending = asyncio.create_task(policy.ingest_chunk(make_chunk("a", 2, b"x" * 60)))
    await sink.wait_stalled()
    assert not pending.done()
    sink.release()
    await asyncio.wait_for(pending, 5)
    await policy.flush()
    assert [len(c.items) for c in sink.chunk_commits] == [1, 1]


# --------------------------------------------------------------------------- pressure


async def test_non_droppable_evicts_the_oldest_waiting_droppable(logs: LogCapture) -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=4, batch_events=2)
    await policy.ingest_event(make_event(1, "item"))
    await policy.ingest_event(make_event(2, "item"))  # threshold: batch [1, 2] in flight
    await sink.wait_stalled()
    await policy.ingest_event(make_event(3, "log"))
    await policy.ingest_event(make_event(4, "enqueue"))  # full: 2 in flight + 2 waiting
    await policy.ingest_event(make_event(5, "checkpoint"))  # evicts seq 3
    await policy.ingest_event(make_event(6, "rotate_proxy"))  # full again: dropped
    stats = policy.stats()
    assert dict(stats.dropped_by_reason) == {"evicted_for_non_droppable": 1, "buffer_full": 1}
    assert dict(stats.dropped_by_type) == {"log": 1, "rotate_proxy": 1}
    assert "Warning: buffered policy dropped log event (seq 3): evicted_for_non_droppable" in logs.at("WARNING")
    sink.release()
    await policy.flush()
    await policy.close()
    assert [e.seq for e in sink.events] == [1, 2, 4, 5]
    summary = [m for m in logs.at("WARNING") if "dropped (" in m]
    assert summary == [
        "Warning: buffered policy: drop burst ended: 2 events dropped "
        "(log: 1 evicted_for_non_droppable; rotate_proxy: 1 buffer_full)",
        "Warning: buffered policy: 2 events dropped (log: 1 evicted_for_non_droppable; rotate_proxy: 1 buffer_full)",
    ]


async def test_every_drop_burst_logs_one_warning_when_the_pressure_ends(logs: LogCapture) -> None:
    sink = MemorySink()
    policy = buffered(sink, buffer_events=1, batch_events=1)
    seq = 0
    for ended, burst in enumerate((3, 2)):
        sink.stall()
        seq += 1
        await policy.ingest_event(make_event(seq, "item"))  # in flight, buffer full
        await sink.wait_stalled()
        for _ in range(burst):
            seq += 1
            await policy.ingest_event(make_event(seq, "log"))
        assert len([m for m in logs.at("WARNING") if "drop burst" in m]) == ended  # not before the commit
        sink.release()
        await policy.flush()
    bursts = [m for m in logs.at("WARNING") if "drop burst" in m]
    assert bursts == [
        "Warning: buffered policy: drop burst ended: 3 events dropped (log: 3 buffer_full)",
        "Warning: buffered policy: drop burst ended: 2 events dropped (log: 2 buffer_full)",
    ]
    assert logs.count("Warning: buffered policy dropped log", "WARNING") == 1  # first per (type, reason)
    await policy.close()
    assert policy.stats().dropped_by_type == {"log": 5}


async def test_in_flight_droppables_are_never_evicted() -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=2, batch_events=2)
    await policy.ingest_event(make_event(1, "log"))
    await policy.ingest_event(make_event(2, "log"))  # in flight
    await sink.wait_stalled()
    pending = asyncio.create_task(policy.ingest_event(make_event(3, "item")))
    await asyncio.sleep(0.02)
    assert not pending.done()
    assert policy.stats().events_dropped == 0
    sink.release()
    await asyncio.wait_for(pending, 5)
    await policy.flush()
    assert [e.seq for e in sink.events] == [1, 2, 3]


async def test_repeated_drops_log_at_debug_after_the_first(logs: LogCapture) -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=1, batch_events=1)
    await policy.ingest_event(make_event(1, "item"))
    await sink.wait_stalled()
    for seq in range(2, 6):
        await policy.ingest_event(make_event(seq, "log"))
    assert logs.count("Warning: buffered policy dropped log", "WARNING") == 1
    assert logs.count("buffered policy dropped log", "DEBUG") == 3
    sink.release()
    await policy.flush()
    await policy.close()


async def test_waiting_ingest_raises_when_the_writer_gives_up() -> None:
    sink = MemorySink()
    sink.fail(None)
    policy = buffered(sink, buffer_events=2, batch_events=2, max_flush_retries=2)
    await policy.ingest_event(make_event(1))
    await policy.ingest_event(make_event(2))
    with pytest.raises(PolicyError, match="permanently after 2 retries"):
        await policy.ingest_event(make_event(3))
    with pytest.raises(PolicyError):
        await policy.flush()
    await policy.close()
    stats = policy.stats()
    assert stats.events_unflushed == 3
    assert stats.events_received == 3


async def test_newcomers_never_join_a_batch_under_retry() -> None:
    sink = MemorySink()
    sink.fail(2)
    policy = buffered(sink, buffer_events=4, batch_events=2, max_flush_retries=3)
    await policy.ingest_event(make_event(1))
    await policy.ingest_event(make_event(2))
    await policy.ingest_event(make_event(3))
    await policy.flush()
    sizes = [n for kind, n, _ in sink.calls]
    assert sizes == [2, 2, 2, 1]
    assert [len(c.items) for c in sink.commits] == [2, 1]


# --------------------------------------------------------------------------- flush modes


async def _chunk_and_record(policy: object) -> None:
    chunks, record = make_artifact(1, [b"abc"])
    await policy.ingest_chunk(chunks[0])  # type: ignore[attr-defined]
    await policy.ingest_event(record)  # type: ignore[attr-defined]


async def test_at_least_once_resends_chunks_after_an_event_phase_failure() -> None:
    sink = MemorySink()
    sink.fail(1, on="events")
    policy = buffered(sink, buffer_events=10, flush_mode="at_least_once")
    await _chunk_and_record(policy)
    await policy.flush()
    assert len(sink.chunk_commits) == 2  # duplicated chunks
    assert len(sink.event_commits) == 1
    assert policy.stats().chunks_persisted == 1


async def test_at_least_once_duplicates_events_after_an_ambiguous_failure() -> None:
    sink = MemorySink()
    sink.fail(1, on="events", ambiguous=True)
    policy = buffered(sink, buffer_events=10, flush_mode="at_least_once")
    await policy.ingest_event(make_event(1))
    await policy.flush()
    assert [e.seq for e in sink.events] == [1, 1]
    assert policy.stats().events_persisted == 1


async def test_chunks_first_skips_committed_chunks() -> None:
    sink = MemorySink()
    sink.fail(1, on="events")
    policy = buffered(sink, buffer_events=10, flush_mode="chunks_first")
    await _chunk_and_record(policy)
    await policy.flush()
    assert len(sink.chunk_commits) == 1
    assert len(sink.event_commits) == 1
    event_ids = [sid for kind, _, sid in sink.calls if kind == "events"]
    assert len(set(event_ids)) == 2  # new snapshot id for the event phase


async def test_chunks_first_still_duplicates_events_after_an_ambiguous_failure() -> None:
    sink = MemorySink()
    sink.fail(1, on="events", ambiguous=True)
    policy = buffered(sink, buffer_events=10, flush_mode="chunks_first")
    await policy.ingest_event(make_event(1))
    await policy.flush()
    assert [e.seq for e in sink.events] == [1, 1]


async def test_two_phase_reuses_snapshot_ids_so_nothing_duplicates() -> None:
    sink = MemorySink()
    sink.fail(1, on="chunks", ambiguous=True)
    sink.fail(1, on="events", ambiguous=True)
    policy = buffered(sink, buffer_events=10, flush_mode="two_phase")
    await _chunk_and_record(policy)
    await policy.flush()
    assert len(sink.chunks) == 1
    assert len(sink.events) == 1
    chunk_ids = {sid for kind, _, sid in sink.calls if kind == "chunks"}
    event_ids = [sid for kind, _, sid in sink.calls if kind == "events"]
    assert len(chunk_ids) == 1
    assert len(event_ids) == 2
    assert len(set(event_ids)) == 1
    assert len(sink.replays) == 2


async def test_flush_waits_for_the_writer_then_writes_the_rest() -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=10, batch_events=2)
    await policy.ingest_event(make_event(1))
    await policy.ingest_event(make_event(2))
    await sink.wait_stalled()
    await policy.ingest_event(make_event(3))
    flushing = asyncio.create_task(policy.flush())
    await asyncio.sleep(0.02)
    assert not flushing.done()
    sink.release()
    await asyncio.wait_for(flushing, 5)
    assert [[e.seq for e in c.items] for c in sink.commits] == [[1, 2], [3]]
    assert policy.stats().buffered_events == 0


async def test_cut_short_final_flush_reports_unflushed() -> None:
    sink = MemorySink()
    sink.stall()
    policy = buffered(sink, buffer_events=10)
    for seq in range(1, 4):
        await policy.ingest_event(make_event(seq, "checkpoint"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(policy.flush(), 0.05)
    await policy.close()
    stats = policy.stats()
    assert stats.events_unflushed == 3
    assert dict(stats.unflushed_by_type) == {"checkpoint": 3}
    assert sink.close_calls == 1
