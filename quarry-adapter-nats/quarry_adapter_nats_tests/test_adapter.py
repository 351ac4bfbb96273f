"""The ``nats`` adapter against a real NATS server with JetStream on 127.0.0.1 (no mocks): core publish,
JetStream ack and ``Nats-Msg-Id`` de-duplication, retries, redaction and validation."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.js.api import StreamConfig

import quarry_adapter_nats
from quarry_adapter_nats.adapter import NatsAdapter
from quarry_adapter_nats.config import DEFAULT_SUBJECT, jetstream_enabled, nats_servers, nats_subject
from quarry_adapter_nats.hooks import make_nats_adapter, validate_nats_config
from quarry_adapter_nats_tests.conftest import free_port
from quarry_core.errors import ConfigError, NotificationError
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import deliver_notification, encode_event
from quarry_core.plugins import PluginHost


def _event() -> dict[str, Any]:
    return {
        "contract_version": "1.0.0",
        "event_type": "run_completed",
        "notification_id": str(uuid.uuid4()),
        "run_id": "run-nats-1",
        "outcome": "script_error",
        "exit_code": 1,
    }


def _config(url: str, subject: str, **kw: Any) -> AdapterConfig:
    options = {"subject": subject, **kw.pop("options", {})}
    return AdapterConfig(type="nats", url=url, options=options, **kw)


def test_core_publish_reaches_a_subscriber(nats_url: str, subject: str) -> None:
    event = _event()

    async def go() -> list[bytes]:
        nc = await nats.connect(nats_url)
        sub = await nc.subscribe(subject)
        await nc.flush()
        await deliver_notification(make_nats_adapter, _config(nats_url, subject), event)
        msg = await sub.next_msg(timeout=2)
        await nc.close()
        return [msg.data]

    assert asyncio.run(go()) == [encode_event(event)]


async def _with_stream(url: str, subject: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    nc = await nats.connect(url)
    js = nc.jetstream()
    name = "QUARRY_TEST_" + uuid.uuid4().hex[:12].upper()
    await js.add_stream(StreamConfig(name=name, subjects=[subject], duplicate_window=60.0))
    try:
        return await body(js)
    finally:
        try:
            await js.delete_stream(name)
        finally:
            await nc.close()


def test_jetstream_publish_is_acked_and_deduplicated_by_notification_id(nats_url: str, subject: str) -> None:
    event = _event()
    config = _config(nats_url, subject, options={"jetstream": True})

    async def body(js: Any) -> tuple[int, dict[str, Any], str]:
        # the same notification twice (a retry, or an outbox replay): the stream keeps one message
        await deliver_notification(make_nats_adapter, config, event)
        await deliver_notification(make_nats_adapter, config, event)
        other = {**event, "notification_id": str(uuid.uuid4())}
        await deliver_notification(make_nats_adapter, config, other)
        info = await js.stream_info(await js.find_stream_name_by_subject(subject))
        first = await js.get_msg(info.config.name, seq=1)
        return info.state.messages, json.loads(first.data), first.headers.get("Nats-Msg-Id")

    count, body_json, msg_id = asyncio.run(_with_stream(nats_url, subject, body))
    assert count == 2
    assert body_json == event
    assert msg_id == event["notification_id"]


def test_jetstream_without_a_stream_fails_at_once(nats_url: str, subject: str) -> None:
    config = _config(nats_url, subject, options={"jetstream": "true"}, retries=3, timeout=5)
    start = time.monotonic()
    with pytest.raises(NotificationError, match=r"^nats: no JetStream stream captures subject"):
        asyncio.run(deliver_notification(make_nats_adapter, config, _event()))
    assert time.monotonic() - start < 0.45  # no backoff wait: a final error


def test_unreachable_server_is_retried_and_credentials_redacted() -> None:
    url = f"nats://alice:n4ts-secret@127.0.0.1:{free_port()}"
    config = AdapterConfig(type="nats", url=url, retries=1, timeout=5)
    start = time.monotonic()
    with pytest.raises(NotificationError) as info:
        asyncio.run(deliver_notification(make_nats_adapter, config, _event()))
    message = str(info.value)
    assert message.startswith("nats: failed after 2 attempts: publish to 'quarry.run_completed' at nats://alice:***@")
    assert "n4ts-secret" not in message
    assert time.monotonic() - start >= 0.45


def test_a_cluster_url_with_one_live_server_delivers(nats_url: str, subject: str) -> None:
    event = _event()
    cluster = f"nats://127.0.0.1:{free_port()},{nats_url}"

    async def go() -> bytes:
        nc = await nats.connect(nats_url)
        sub = await nc.subscribe(subject)
        await nc.flush()
        await deliver_notification(make_nats_adapter, _config(cluster, subject, retries=2), event)
        msg = await sub.next_msg(timeout=3)
        await nc.close()
        return bytes(msg.data)

    assert asyncio.run(go()) == encode_event(event)


def test_config_parsing() -> None:
    assert nats_servers("nats://a:4222, nats://b:4222") == ["nats://a:4222", "nats://b:4222"]
    assert nats_subject({}) == DEFAULT_SUBJECT
    assert jetstream_enabled({"jetstream": "yes"}) is True
    assert jetstream_enabled({}) is False
    with pytest.raises(ConfigError, match="jetstream must be true or false"):
        jetstream_enabled({"jetstream": "maybe"})


@pytest.mark.parametrize(
    ("url", "options", "reason"),
    [
        ("", {}, "nats adapter URL is required"),
        ("http://h:4222", {}, "must start with nats:// or tls://"),
        ("nats://h:4222,", {}, "empty server"),
        ("nats://:pw@:4222", {}, "has no host"),
        ("nats://h:4222", {"subject": "a.*"}, "invalid nats subject"),
        ("nats://h:4222", {"subject": "a..b"}, "invalid nats subject"),
        ("nats://h:4222", {"subject": ".a"}, "invalid nats subject"),
    ],
)
def test_validate_rejects(url: str, options: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid adapter config: ") as info:
        validate_nats_config(AdapterConfig(type="nats", url=url, options=options))
    assert reason in str(info.value)


def test_registration_and_lazy_import() -> None:
    import subprocess
    import sys

    host = PluginHost.build()
    assert host.available("notification_adapter")["nats"] == "quarry-adapter-nats"
    code = "import sys, quarry_adapter_nats.hooks; print('nats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
    assert quarry_adapter_nats.NatsAdapter is NatsAdapter
    assert quarry_adapter_nats.__all__ == sorted(quarry_adapter_nats.__all__)
