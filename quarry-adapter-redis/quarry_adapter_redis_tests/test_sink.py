"""The ``redis`` Redis Streams event sink against a real Redis on 127.0.0.1: XADD order and fields, MAXLEN,
EXPIRE, retries, and registration through the plugin host."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
import redis

from quarry_adapter_redis.config import DEFAULT_MAX_LEN, DEFAULT_TTL, parse_sink_settings
from quarry_adapter_redis.errors import RedisSinkError
from quarry_adapter_redis.hooks import make_redis_sink, validate_redis_sink_config
from quarry_adapter_redis.sink import RedisStreamSink
from quarry_adapter_redis_tests.conftest import free_port
from quarry_core.errors import ConfigError
from quarry_core.interfaces import EventSinkConfig
from quarry_core.plugins import PluginHost
from quarry_core.protocol.frames import Event
from quarry_core.testing.fakes import make_event


def _sink(url: str, **options: Any) -> RedisStreamSink:
    config = EventSinkConfig(type="redis", url=url, options={"source": "shop", "category": "books", **options})
    sink = make_redis_sink(config)
    assert isinstance(sink, RedisStreamSink)
    return sink


def _write(sink: RedisStreamSink, *batches: Sequence[Event]) -> None:
    async def go() -> None:
        try:
            for batch in batches:
                await sink.write_events(batch)
        finally:
            await sink.close()

    asyncio.run(go())


def _entries(url: str, key: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return [fields for _id, fields in client.xrange(key)]
    finally:
        client.close()


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def test_every_event_in_order_with_the_contract_fields(redis_url: str, key: str) -> None:
    first = [make_event(i, t) for i, t in enumerate(["item", "log", "item"], start=1)]
    second = [attrs.evolve(make_event(i, "item"), job_id="job-7", attempt=2) for i in (4, 5)]
    _write(_sink(redis_url, stream_key=key), first, [], second)
    entries = _entries(redis_url, key)
    assert [e["seq"] for e in entries] == ["1", "2", "3", "4", "5"]
    one = entries[0]
    assert list(one) == [
        "run_id",
        "event_type",
        "seq",
        "timestamp",
        "payload",
        "source",
        "category",
        "event_id",
        "attempt",
        "contract_version",
    ]
    ev = first[0]
    assert one["run_id"] == ev.run_id and one["event_type"] == "item" and one["timestamp"] == ev.ts
    assert json.loads(one["payload"]) == ev.payload
    assert (one["source"], one["category"], one["event_id"]) == ("shop", "books", ev.event_id)
    assert one["attempt"] == "1" and one["contract_version"] == ev.contract_version
    assert entries[2]["event_type"] == "item" and entries[1]["event_type"] == "log"
    assert entries[3]["job_id"] == "job-7" and entries[3]["attempt"] == "2"
    assert "job_id" not in entries[0]


def test_empty_batch_makes_no_call(redis_url: str, key: str) -> None:
    sink = _sink(redis_url, stream_key=key)
    _write(sink, [])
    assert sink.statistics() == {"batches_written": 0, "retries": 0, "expired": False}
    assert not _client(redis_url).exists(key)


def test_expire_once_after_the_first_write(redis_url: str, key: str) -> None:
    sink = _sink(redis_url, stream_key=key, ttl="90s")
    _write(sink, [make_event(1)], [make_event(2)])
    ttl = _client(redis_url).ttl(key)
    assert 80 <= ttl <= 90
    assert sink.statistics()["expired"] is True


def test_ttl_zero_means_the_default_and_minus_one_disables(redis_url: str, key: str) -> None:
    _write(_sink(redis_url, stream_key=key, ttl=0), [make_event(1)])
    assert DEFAULT_TTL - 10 <= _client(redis_url).ttl(key) <= DEFAULT_TTL
    other = key + ":no-ttl"
    try:
        _write(_sink(redis_url, stream_key=other, ttl=-1), [make_event(1)])
        assert _client(redis_url).ttl(other) == -1  # exists, no expiry
    finally:
        _client(redis_url).delete(other)


def test_max_len_trims_approximately(redis_url: str, key: str) -> None:
    batch = [make_event(i) for i in range(1, 1001)]
    _write(_sink(redis_url, stream_key=key, max_len=10), batch)
    length = _client(redis_url).xlen(key)
    assert 10 <= length < 1000  # MAXLEN ~ trims whole macro nodes
    entries = _entries(redis_url, key)
    assert entries[-1]["seq"] == "1000"  # the newest survive


def test_max_len_minus_one_keeps_everything(redis_url: str, key: str) -> None:
    _write(_sink(redis_url, stream_key=key, max_len=-1), [make_event(i) for i in range(1, 301)])
    assert _client(redis_url).xlen(key) == 300


def test_unreachable_redis_retries_then_raises_redacted() -> None:
    sink = _sink(f"redis://:pa55word@127.0.0.1:{free_port()}/0", retries=2, timeout="1s")
    start = time.monotonic()
    with pytest.raises(RedisSinkError) as info:
        _write(sink, [make_event(1)])
    elapsed = time.monotonic() - start
    assert info.value.attempts == 3
    assert "failed after 3 attempts" in str(info.value)
    assert "pa55word" not in str(info.value) and ":***@" in str(info.value)
    assert sink.statistics()["retries"] == 2
    assert 1.45 <= elapsed < 6  # backoff 0.5 s + 1 s


def test_a_failed_batch_is_retried_whole(redis_url: str, key: str) -> None:
    """The connection dies between two batches: the next batch is retried on a fresh connection, complete."""

    async def go() -> None:
        sink = _sink(redis_url, stream_key=key, retries=2)
        await sink.write_events([make_event(1), make_event(2)])
        assert sink._client is not None
        client_id = await sink._client.client_id()
        admin = redis.asyncio.Redis.from_url(redis_url)
        await admin.execute_command("CLIENT", "KILL", "ID", client_id)
        await admin.aclose()
        await sink.write_events([make_event(3), make_event(4)])
        await sink.close()
        assert sink.statistics()["retries"] <= 1

    asyncio.run(go())
    assert [e["seq"] for e in _entries(redis_url, key)] == ["1", "2", "3", "4"]


def test_write_after_close_fails(redis_url: str, key: str) -> None:
    sink = _sink(redis_url, stream_key=key)

    async def go() -> None:
        await sink.close()
        with pytest.raises(RedisSinkError, match="after close"):
            await sink.write_events([make_event(1)])

    asyncio.run(go())


def test_settings_defaults_and_checks() -> None:
    s = parse_sink_settings("redis://h:1", {})
    assert (s.max_len, s.ttl, s.stream_key) == (DEFAULT_MAX_LEN, DEFAULT_TTL, "quarry:events")
    assert parse_sink_settings("redis://h:1", {"max_len": 0, "ttl": 0}).max_len == DEFAULT_MAX_LEN
    assert parse_sink_settings("redis://h:1", {"max_len": "-1", "ttl": "-1"}).ttl is None
    for options, reason in [
        ({"max_len": -2}, "max_len must be >= -1"),
        ({"ttl": "0.5s"}, "ttl must be at least 1s"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"retries": -1}, "retries must be >= 0"),
        ({"stream_key": ""}, "stream_key must be a non-empty string"),
        ({"nope": 1}, 'unknown option "nope"'),
    ]:
        with pytest.raises(ConfigError, match=r"^invalid event sink config: ") as info:
            parse_sink_settings("redis://h:1", options)
        assert reason in str(info.value)


def test_validate_checks_delivery_and_url() -> None:
    with pytest.raises(ConfigError, match="delivery must be"):
        validate_redis_sink_config(EventSinkConfig(type="redis", url="redis://h:1", delivery="sometimes"))
    with pytest.raises(ConfigError, match="redis URL is required"):
        validate_redis_sink_config(EventSinkConfig(type="redis"))
    validate_redis_sink_config(EventSinkConfig(type="redis", url="redis://h:1", delivery="best_effort"))


def test_the_sink_needs_source_and_category() -> None:
    with pytest.raises(ConfigError, match="needs options source and category"):
        RedisStreamSink(EventSinkConfig(type="redis", url="redis://h:1"))


def test_entry_point_registers_adapter_and_sink() -> None:
    host = PluginHost.build()
    assert host.available("notification_adapter")["redis"] == "quarry-adapter-redis"
    assert host.available("event_sink")["redis"] == "quarry-adapter-redis"


def test_hooks_module_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = "import sys, quarry_adapter_redis.hooks; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
