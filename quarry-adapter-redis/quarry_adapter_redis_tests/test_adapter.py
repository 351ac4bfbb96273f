"""The ``redis`` pub/sub adapter against a real Redis on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from quarry_adapter_redis.adapter import RedisPubSubAdapter
from quarry_adapter_redis.config import DEFAULT_CHANNEL
from quarry_adapter_redis.hooks import make_redis_adapter, validate_redis_adapter_config
from quarry_adapter_redis_tests.conftest import free_port
from quarry_core.errors import ConfigError, NotificationError
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import deliver_notification, encode_event, publish_with_retries

EVENT: dict[str, Any] = {
    "contract_version": "1.0.0",
    "event_type": "run_completed",
    "notification_id": "0b8e3c36-5a0c-4b8e-9d41-1f5f3a0a2f10",
    "run_id": "run-redis-1",
    "outcome": "success",
    "message": "naïve ✓",
}


async def _publish_and_receive(url: str, channel: str | None, **config: Any) -> list[bytes]:
    """Subscribe, deliver the event through the adapter, and collect what the subscriber got."""
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    target = channel or DEFAULT_CHANNEL
    await pubsub.subscribe(target)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    options = {"channel": channel} if channel else {}
    adapter_config = AdapterConfig(type="redis", url=url, options=options, **config)
    await deliver_notification(make_redis_adapter, adapter_config, EVENT)
    got: list[bytes] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            got.append(message["data"])
            break
    await pubsub.unsubscribe(target)
    await pubsub.aclose()  # type: ignore[attr-defined]
    await client.aclose()
    return got


def test_publishes_the_event_json_on_the_channel(redis_url: str, key: str) -> None:
    got = asyncio.run(_publish_and_receive(redis_url, key))
    assert got == [encode_event(EVENT)]
    assert json.loads(got[0]) == EVENT


def test_default_channel(redis_url: str) -> None:
    got = asyncio.run(_publish_and_receive(redis_url, None))
    assert [json.loads(g) for g in got] == [EVENT]


def test_no_subscriber_still_succeeds(redis_url: str, key: str) -> None:
    config = AdapterConfig(type="redis", url=redis_url, options={"channel": key})
    asyncio.run(deliver_notification(make_redis_adapter, config, EVENT))


def test_unreachable_redis_is_retried_with_backoff_and_redacted() -> None:
    url = f"redis://:s3cr3t-pass@127.0.0.1:{free_port()}/0"
    config = AdapterConfig(type="redis", url=url, retries=2, timeout=5)
    start = time.monotonic()
    with pytest.raises(NotificationError) as info:
        asyncio.run(deliver_notification(make_redis_adapter, config, EVENT))
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert message.startswith("redis: failed after 3 attempts: PUBLISH quarry:run_completed to redis://:***@127.0.0.1:")
    assert "s3cr3t-pass" not in message
    # waits 0.5 s then 1 s between the three attempts
    assert 1.45 <= elapsed < 4.5


def test_a_retry_after_a_dropped_connection_delivers(redis_url: str, key: str) -> None:
    """The first attempt fails (the connection is killed under it); the adapter reconnects on the next one."""

    async def scenario() -> list[bytes]:
        sub = aioredis.Redis.from_url(redis_url)
        pubsub = sub.pubsub()
        await pubsub.subscribe(key)
        await pubsub.get_message(timeout=1)
        adapter = RedisPubSubAdapter(AdapterConfig(type="redis", url=redis_url, options={"channel": key}))
        await adapter.publish(EVENT)  # connects
        assert adapter._client is not None
        first = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        assert first is not None
        # kill exactly the adapter's connection (never anybody else's: Redis is shared)
        client_id = await adapter._client.client_id()
        admin = aioredis.Redis.from_url(redis_url)
        await admin.execute_command("CLIENT", "KILL", "ID", client_id)
        await publish_with_retries(adapter, EVENT, name="redis", retries=2, timeout=5)
        got = []
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        if message is not None:
            got.append(message["data"])
        await adapter.close()
        await pubsub.aclose()  # type: ignore[attr-defined]
        await sub.aclose()
        await admin.aclose()
        return got

    assert asyncio.run(scenario()) == [encode_event(EVENT)]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "redis adapter URL is required"),
        ("http://127.0.0.1:6379", "must start with redis:// or rediss://"),
        ("redis://:pw@/0", "has no host"),
        ("redis://127.0.0.1:6379/zero", "database must be a number"),
        ("redis://127.0.0.1:99999", "invalid redis URL"),
    ],
)
def test_invalid_urls_are_config_errors(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid adapter config: ") as info:
        validate_redis_adapter_config(AdapterConfig(type="redis", url=url))
    assert reason in str(info.value)


def test_config_error_redacts_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        validate_redis_adapter_config(AdapterConfig(type="redis", url="http://:hunter2@h:1"))
    assert "hunter2" not in str(info.value)


def test_empty_channel_is_rejected() -> None:
    with pytest.raises(ConfigError, match="channel must be a non-empty string"):
        validate_redis_adapter_config(AdapterConfig(type="redis", url="redis://h:1", options={"channel": ""}))
