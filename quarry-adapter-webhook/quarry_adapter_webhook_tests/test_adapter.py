"""The webhook adapter against a real HTTP receiver on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from typing import Any

import pytest

from quarry_adapter_webhook.adapter import WebhookAdapter, parse_retry_after
from quarry_adapter_webhook.hooks import make_webhook_adapter
from quarry_adapter_webhook_tests.conftest import HANG, Receiver
from quarry_core import __version__ as quarry_version
from quarry_core.errors import NotificationError
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import RetryableNotificationError, deliver_notification

EVENT: dict[str, Any] = {
    "contract_version": "1.0.0",
    "event_type": "run_completed",
    "notification_id": "6f1c1f55-3f0e-4a43-9a9e-3f1d0b7c1a11",
    "run_id": "run-1",
    "source": "shop",
    "outcome": "success",
    "message": "héllo",
}


def _send(url: str, *, retries: int = 3, timeout: float = 10.0, headers: dict[str, str] | None = None) -> None:
    config = AdapterConfig(type="webhook", url=url, headers=headers or {}, retries=retries, timeout=timeout)
    asyncio.run(deliver_notification(make_webhook_adapter, config, EVENT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_posts_json_with_the_contract_headers(receiver: Receiver) -> None:
    _send(receiver.url, headers={"X-Token": "tok-123", "X-Env": "test"})
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.json() == EVENT
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"quarry/{quarry_version}"
    assert request.headers["Idempotency-Key"] == EVENT["notification_id"]
    assert request.headers["X-Token"] == "tok-123"
    assert request.headers["X-Env"] == "test"


def test_delivered_once_after_two_retries(receiver: Receiver) -> None:
    receiver.respond((500, {}), (503, {}), (200, {}))
    _send(receiver.url, retries=3)
    assert len(receiver.requests) == 3
    # The same body and idempotency key every time, so the receiver can deduplicate.
    assert len({r.body for r in receiver.requests}) == 1
    assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {EVENT["notification_id"]}


@pytest.mark.parametrize("status", [408, 429, 500, 502, 599])
def test_retryable_statuses(receiver: Receiver, status: int) -> None:
    receiver.respond((status, {}))
    _send(receiver.url, retries=1)
    assert len(receiver.requests) == 2


def test_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.respond((429, {"Retry-After": "1"}))
    start = time.monotonic()
    _send(receiver.url, retries=1, timeout=5)
    assert len(receiver.requests) == 2
    assert time.monotonic() - start >= 0.95


def test_exhausted_retries(receiver: Receiver) -> None:
    receiver.respond((500, {}), (500, {}), (502, {}))
    with pytest.raises(NotificationError, match=r"^webhook: failed after 3 attempts: status 502$"):
        _send(receiver.url, retries=2)
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 409, 410, 422])
def test_other_4xx_fail_at_once(receiver: Receiver, status: int) -> None:
    receiver.respond((status, {}))
    with pytest.raises(NotificationError, match=rf"^webhook: non-retriable status {status}$"):
        _send(receiver.url, retries=3)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(receiver: Receiver, status: int) -> None:
    receiver.respond((status, {"Location": "/elsewhere"}))
    with pytest.raises(NotificationError, match=rf"^webhook: non-retriable status {status}$"):
        _send(receiver.url, retries=3)
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_hanging_receiver_is_bounded_by_the_timeout(receiver: Receiver) -> None:
    receiver.respond(HANG, HANG, HANG)
    start = time.monotonic()
    with pytest.raises(NotificationError, match=r"^webhook: failed after 1 attempt: "):
        _send(receiver.url, retries=3, timeout=0.5)
    assert time.monotonic() - start < 1.5


def test_hang_then_success_retries_after_the_attempt_timeout(receiver: Receiver) -> None:
    receiver.respond(HANG)
    adapter = WebhookAdapter(AdapterConfig(type="webhook", url=receiver.url, timeout=0.3))

    async def scenario() -> None:
        try:
            with pytest.raises(RetryableNotificationError, match="timed out"):
                await adapter.publish(EVENT)
            await adapter.publish(EVENT)
        finally:
            await adapter.close()

    asyncio.run(scenario())
    assert len(receiver.requests) == 2


def test_connection_refused_is_retried_and_credentials_are_redacted() -> None:
    url = f"http://alice:hunter2@127.0.0.1:{_free_port()}/hook"
    start = time.monotonic()
    with pytest.raises(NotificationError) as info:
        _send(url, retries=1, timeout=5, headers={"Authorization": "Bearer sekrit-token"})
    message = str(info.value)
    assert message.startswith("webhook: failed after 2 attempts: POST http://alice:***@127.0.0.1:")
    assert "hunter2" not in message
    assert "sekrit-token" not in message
    assert time.monotonic() - start >= 0.45


def test_url_credentials_become_basic_auth(receiver: Receiver) -> None:
    url = receiver.url.replace("http://", "http://alice:hunter2@")
    _send(url)
    (request,) = receiver.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:hunter2").decode()


def test_configured_headers_override_defaults(receiver: Receiver) -> None:
    _send(receiver.url, headers={"User-Agent": "custom/1"})
    assert receiver.requests[0].headers["User-Agent"] == "custom/1"


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
