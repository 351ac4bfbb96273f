"""Unit tests of the strict policy (policies.md §4)."""

from __future__ import annotations

import asyncio

import pytest

from quarry_core.errors import ConfigError, PolicyError
from quarry_core.interfaces import PolicyConfig
from quarry_core.snapshot_ids import SNAPSHOT_ID_PATTERN
from quarry_core.testing.fakes import MemorySink, make_artifact, make_event, policy_context
from quarry_policy_strict import StrictPolicy, validate_config


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make(sink: MemorySink, retries: int = 3, sleep: Sleeps | None = None) -> StrictPolicy:
    return StrictPolicy(
        PolicyConfig(name="strict", max_flush_retries=retries), sink, policy_context("strict"), sleep=sleep
    )


def test_each_event_is_committed_before_ingest_returns() -> None:
    async def body() -> None:
        sink = MemorySink()
        policy = make(sink)
        for seq in range(1, 4):
            await policy.ingest_event(make_event(seq))
            assert [e.seq for e in sink.events] == list(range(1, seq + 1))
        assert [len(c.items) for c in sink.commits] == [1, 1, 1]

    asyncio.run(body())


def test_chunks_are_one_commit_each() -> None:
    async def body() -> None:
        sink = MemorySink()
        policy = make(sink)
        chunks, record = make_artifact(1, [b"a", b"b"])
        for chunk in chunks:
            await policy.ingest_chunk(chunk)
        await policy.ingest_event(record)
        assert [c.kind for c in sink.commits] == ["chunks", "chunks", "events"]
        assert policy.stats().chunks_persisted == 2

    asyncio.run(body())


def test_retry_reuses_the_snapshot_id_and_backs_off() -> None:
    async def body() -> None:
        sink = MemorySink()
        sink.fail(3)
        sleeps = Sleeps()
        policy = make(sink, retries=3, sleep=sleeps)
        await policy.ingest_event(make_event(1))
        ids = {sid for _, _, sid in sink.calls}
        assert len(sink.calls) == 4
        assert len(ids) == 1
        (sid,) = ids
        assert sid is not None
        assert SNAPSHOT_ID_PATTERN.match(sid)
        assert sleeps.delays == [0.1, 0.2, 0.4]
        stats = policy.stats()
        assert stats.write_retries == 3
        assert stats.events_persisted == 1
        assert stats.errors == 0

    asyncio.run(body())


def test_ambiguous_failure_does_not_duplicate() -> None:
    async def body() -> None:
        sink = MemorySink()
        sink.fail(1, ambiguous=True)
        policy = make(sink, sleep=Sleeps())
        await policy.ingest_event(make_event(1))
        assert [e.seq for e in sink.events] == [1]
        assert len(sink.replays) == 1

    asyncio.run(body())


def test_exhausted_retries_raise_and_count_unflushed() -> None:
    async def body() -> None:
        sink = MemorySink()
        sink.fail(None)
        sleeps = Sleeps()
        policy = make(sink, retries=3, sleep=sleeps)
        with pytest.raises(PolicyError, match="injected events write failure"):
            await policy.ingest_event(make_event(1, "log"))
        assert len(sink.calls) == 4
        stats = policy.stats()
        assert stats.errors == 1
        assert stats.events_unflushed == 1
        assert dict(stats.unflushed_by_type) == {"log": 1}
        assert stats.events_dropped == 0

    asyncio.run(body())


def test_exhausted_chunk_write_raises() -> None:
    async def body() -> None:
        sink = MemorySink()
        sink.fail(None, on="chunks")
        policy = make(sink, retries=1, sleep=Sleeps())
        chunks, _ = make_artifact(1)
        with pytest.raises(PolicyError):
            await policy.ingest_chunk(chunks[0])
        assert policy.stats().chunks_persisted == 0
        assert policy.stats().errors == 1

    asyncio.run(body())


def test_backoff_is_capped_at_five_seconds() -> None:
    async def body() -> None:
        sink = MemorySink()
        sink.fail(None)
        sleeps = Sleeps()
        policy = make(sink, retries=8, sleep=sleeps)
        with pytest.raises(PolicyError):
            await policy.ingest_event(make_event(1))
        assert sleeps.delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]

    asyncio.run(body())


def test_cancelled_write_counts_as_unflushed() -> None:
    async def body() -> None:
        sink = MemorySink()
        sink.stall()
        policy = make(sink)
        task = asyncio.create_task(policy.ingest_event(make_event(1, "item")))
        await sink.wait_stalled()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = policy.stats()
        assert stats.events_received == 1
        assert stats.events_unflushed == 1

    asyncio.run(body())


def test_flush_is_a_counted_noop_and_close_is_idempotent() -> None:
    async def body() -> None:
        sink = MemorySink()
        policy = make(sink)
        await policy.flush()
        await policy.flush("termination")
        assert policy.stats().flush_count == 2
        assert sink.calls == []
        await policy.close()
        await policy.close()
        assert sink.close_calls == 1
        with pytest.raises(PolicyError, match="closed"):
            await policy.ingest_event(make_event(1))

    asyncio.run(body())


def test_validate_rejects_negative_retries() -> None:
    validate_config(PolicyConfig(name="strict"))
    with pytest.raises(ConfigError, match="max-flush-retries"):
        validate_config(PolicyConfig(name="strict", max_flush_retries=-1))
