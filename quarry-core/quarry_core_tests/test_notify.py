"""Tests of quarry_core.notify: the run_completed event, retries, deadlines, cancellation and redaction."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from quarry_core import notify
from quarry_core.errors import ConfigError, NotificationError
from quarry_core.interfaces import AdapterConfig, PolicyStats, StorageConfig
from quarry_core.notify import (
    RetryableNotificationError,
    build_run_completed_event,
    check_adapter_config,
    deliver_notification,
    encode_event,
    events_partition_url,
    publish_with_retries,
    redact_headers,
    redact_secrets,
    redact_text,
    redact_url,
    storage_root_url,
)
from quarry_core.outcomes import Outcome
from quarry_core.protocol.constants import CONTRACT_VERSION
from quarry_core.runtime.artifacts import ArtifactStats
from quarry_core.runtime.run import RunReport, RunSettings

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _report(**settings: Any) -> RunReport:
    storage_root = settings.pop("storage_root", "file:///var/quarry")
    outcome = settings.pop("outcome", Outcome.SUCCESS)
    values: dict[str, Any] = {
        "script": "/scripts/shop.py",
        "run_id": "run-1",
        "source": "shop",
        "category": "products",
        "storage": StorageConfig(path="/var/quarry", dataset="quarry"),
    }
    values.update(settings)
    return RunReport(
        settings=RunSettings(**values),
        outcome=outcome,
        message="run completed",
        exit_code=0,
        started_at="2024-05-01T10:00:00.000Z",
        ended_at="2024-05-01T10:00:01.500Z",
        duration_ms=1500,
        day="2024-05-01",
        event_count=42,
        policy_stats=PolicyStats(events_received=42, events_persisted=42),
        artifacts=ArtifactStats(),
        sidecar_files=(),
        metrics={},
        storage_backend="file",
        storage_root=storage_root,
        executor_version="0.1.0",
    )


# --------------------------------------------------------------------------- the event


def test_module_all_is_sorted_and_resolvable() -> None:
    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)

    assert notify.__all__ == sorted(notify.__all__, key=key)
    for name in notify.__all__:
        assert hasattr(notify, name)


def test_event_of_a_root_run_has_every_key_in_order_and_no_lineage() -> None:
    now = datetime(2024, 5, 1, 10, 0, 2, 123456, tzinfo=UTC)
    event = build_run_completed_event(_report(), exit_code=0, now=now)
    assert list(event) == [
        "contract_version",
        "event_type",
        "notification_id",
        "run_id",
        "attempt",
        "source",
        "category",
        "day",
        "dataset",
        "outcome",
        "message",
        "exit_code",
        "event_count",
        "duration_ms",
        "storage_path",
        "timestamp",
    ]
    assert event["contract_version"] == CONTRACT_VERSION
    assert event["event_type"] == "run_completed"
    assert uuid.UUID(event["notification_id"]).version == 4
    assert event["run_id"] == "run-1"
    assert event["attempt"] == 1
    assert (event["source"], event["category"], event["day"], event["dataset"]) == (
        "shop",
        "products",
        "2024-05-01",
        "quarry",
    )
    assert event["outcome"] == "success"
    assert type(event["outcome"]) is str
    assert event["message"] == "run completed"
    assert (event["exit_code"], event["event_count"], event["duration_ms"]) == (0, 42, 1500)
    assert event["storage_path"] == (
        "file:///var/quarry/datasets/quarry/events/source=shop/category=products/day=2024-05-01/run_id=run-1"
    )
    assert event["timestamp"] == "2024-05-01T10:00:02.123Z"
    # Plain JSON, so every adapter can send it.
    assert json.loads(encode_event(event)) == event


def test_event_lineage_keys_and_exit_code_when_set() -> None:
    report = _report(
        attempt=2,
        job_id="job-7",
        parent_run_id="run-0",
        spawned_by_run_id="run-root",
        depth=2,
        outcome=Outcome.SCRIPT_ERROR,
    )
    event = build_run_completed_event(report, exit_code=1)
    assert event["job_id"] == "job-7"
    assert event["parent_run_id"] == "run-0"
    assert event["spawned_by_run_id"] == "run-root"
    assert event["depth"] == 2
    assert event["attempt"] == 2
    assert event["outcome"] == "script_error"
    assert event["exit_code"] == 1
    assert list(event)[4:8] == ["job_id", "parent_run_id", "spawned_by_run_id", "depth"]
    assert TS_RE.match(event["timestamp"])


def test_each_event_gets_a_fresh_notification_id_unless_given() -> None:
    report = _report()
    a = build_run_completed_event(report, exit_code=0)
    b = build_run_completed_event(report, exit_code=0)
    assert a["notification_id"] != b["notification_id"]
    fixed = build_run_completed_event(report, exit_code=0, notification_id="n-1")
    assert fixed["notification_id"] == "n-1"


def test_storage_path_escapes_partition_values() -> None:
    report = _report(source="a/b:c", category="x=y", run_id="..", storage_root="s3://bucket/prefix/")
    event = build_run_completed_event(report, exit_code=0)
    assert event["storage_path"] == (
        "s3://bucket/prefix/datasets/quarry/events/source=a%2Fb%3Ac/category=x%3Dy/day=2024-05-01/run_id=%2E%2E"
    )


def test_storage_path_of_a_local_relative_root_is_a_file_url(tmp_path: Any) -> None:
    report = _report(storage_root="", storage=StorageConfig(path="rel/data", dataset="ds"))
    event = build_run_completed_event(report, exit_code=0)
    expected_root = "file://" + os.path.abspath("rel/data")
    assert event["storage_path"].startswith(expected_root + "/datasets/ds/events/source=shop/")
    assert storage_root_url("/abs/dir/") == "file:///abs/dir"
    assert storage_root_url("file:///") == "file:///"
    assert events_partition_url("file:///", "d", source="s", category="c", day="2024-01-01", run_id="r") == (
        "file:///datasets/d/events/source=s/category=c/day=2024-01-01/run_id=r"
    )


# --------------------------------------------------------------------------- redaction and config


def test_redact_url() -> None:
    assert redact_url("https://user:secret@example.com/hook?x=1") == "https://user:***@example.com/hook?x=1"
    assert redact_url("redis://:secret@localhost:6379/0") == "redis://:***@localhost:6379/0"
    assert redact_url("https://token@example.com/") == "https://***@example.com/"
    assert redact_url("https://example.com/a") == "https://example.com/a"
    assert redact_url("nats://a:pw@h1:4222,nats://h2:4222") == "nats://a:***@h1:4222,nats://h2:4222"


def test_redact_text_and_secrets() -> None:
    text = "connect to redis://:hunter2@db:6379/0 failed (see https://bob:pw@x.io/y)"
    assert "hunter2" not in redact_text(text)
    assert "pw@" not in redact_text(text)
    assert "redis://:***@db:6379/0" in redact_text(text)
    assert redact_secrets("Bearer abc123 rejected", {"Authorization": "Bearer abc123"}) == "*** rejected"
    assert redact_secrets("value ok", {"X": "ok"}) == "value ok"  # too short to be a secret
    assert redact_headers({"Authorization": "Bearer t", "X-Env": "prod"}) == {"Authorization": "***", "X-Env": "***"}


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (AdapterConfig(type="webhook", url=""), "webhook adapter URL is required"),
        (AdapterConfig(type="webhook", url="http://h", timeout=0), "timeout must be > 0"),
        (AdapterConfig(type="webhook", url="http://h", retries=-1), "retries must be >= 0"),
        (AdapterConfig(type="webhook", url="http://h", headers={"": "v"}), "header name must not be empty"),
        (AdapterConfig(type="webhook", url="http://h", headers={"X": "a\nb"}), "invalid value"),
    ],
)
def test_check_adapter_config(config: AdapterConfig, reason: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid adapter config: ") as info:
        check_adapter_config(config)
    assert reason in str(info.value)


def test_check_adapter_config_accepts_defaults() -> None:
    check_adapter_config(AdapterConfig(type="webhook", url="https://h/x", headers={"A": "b"}))


# --------------------------------------------------------------------------- retries


class ScriptedAdapter:
    """A real NotificationAdapter whose attempts follow a script: an exception to raise, a delay, or success."""

    def __init__(self, *steps: BaseException | float | None) -> None:
        self.steps = list(steps)
        self.attempts: list[float] = []
        self.delivered: list[Mapping[str, Any]] = []
        self.closed = False

    async def publish(self, event: Mapping[str, Any]) -> None:
        self.attempts.append(time.monotonic())
        step = self.steps.pop(0) if self.steps else None
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, float):
            await asyncio.sleep(step)
        self.delivered.append(event)

    async def close(self) -> None:
        self.closed = True

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.attempts, self.attempts[1:], strict=False)]


EVENT = {"event_type": "run_completed", "notification_id": "n-1", "run_id": "r-1"}


def _publish(adapter: ScriptedAdapter, **kwargs: Any) -> None:
    kwargs.setdefault("name", "test")
    asyncio.run(publish_with_retries(adapter, EVENT, **kwargs))


def test_success_at_first_attempt() -> None:
    adapter = ScriptedAdapter(None)
    _publish(adapter)
    assert adapter.delivered == [EVENT]
    assert len(adapter.attempts) == 1


def test_retryable_errors_are_retried_with_exponential_backoff() -> None:
    adapter = ScriptedAdapter(RetryableNotificationError("status 500"), ConnectionResetError("reset"), None)
    _publish(adapter, retries=3, timeout=10)
    assert len(adapter.delivered) == 1
    assert len(adapter.attempts) == 3
    first, second = adapter.gaps()
    assert 0.45 <= first < 0.9
    assert 0.95 <= second < 1.5


def test_exhausted_attempts_name_the_adapter_and_last_error() -> None:
    adapter = ScriptedAdapter(*[RetryableNotificationError(f"test: status {500 + i}") for i in range(3)])
    with pytest.raises(NotificationError) as info:
        _publish(adapter, retries=2, timeout=10)
    assert type(info.value) is NotificationError
    assert str(info.value) == "test: failed after 3 attempts: status 502"
    assert not adapter.delivered


def test_zero_retries_means_one_attempt() -> None:
    adapter = ScriptedAdapter(RetryableNotificationError("status 503"))
    with pytest.raises(NotificationError, match=r"^test: failed after 1 attempt: status 503$"):
        _publish(adapter, retries=0)
    assert len(adapter.attempts) == 1


def test_final_error_is_not_retried() -> None:
    adapter = ScriptedAdapter(NotificationError("test: non-retriable status 404"), None)
    with pytest.raises(NotificationError, match=r"^test: non-retriable status 404$"):
        _publish(adapter, retries=3)
    assert len(adapter.attempts) == 1


def test_unexpected_exception_is_final_and_named() -> None:
    adapter = ScriptedAdapter(ValueError("bad payload"), None)
    with pytest.raises(NotificationError, match=r"^test: ValueError: bad payload$"):
        _publish(adapter)
    assert len(adapter.attempts) == 1


def test_a_hanging_adapter_is_bounded_by_the_timeout() -> None:
    adapter = ScriptedAdapter(60.0, 60.0, 60.0)
    start = time.monotonic()
    with pytest.raises(NotificationError, match=r"^test: failed after 1 attempt: timed out after 0.4s$"):
        _publish(adapter, retries=3, timeout=0.4)
    assert time.monotonic() - start < 1.0


def test_timeout_bounds_retries_and_waits() -> None:
    # Attempts at 0 and 0.5 s; the next wait (1 s) does not fit the 1.2 s budget, so it stops at once.
    adapter = ScriptedAdapter(*[RetryableNotificationError("down") for _ in range(6)])
    start = time.monotonic()
    with pytest.raises(NotificationError, match=r"^test: failed after 2 attempts: down$"):
        _publish(adapter, retries=5, timeout=1.2)
    assert time.monotonic() - start < 0.9


def test_a_slow_attempt_is_cut_at_the_remaining_time() -> None:
    adapter = ScriptedAdapter(RetryableNotificationError("down"), 30.0)
    start = time.monotonic()
    with pytest.raises(NotificationError, match=r"^test: failed after 2 attempts: timed out after 0.\d+s$"):
        _publish(adapter, retries=3, timeout=1.0)
    assert time.monotonic() - start < 1.4


def test_retry_after_is_honoured_when_it_fits() -> None:
    adapter = ScriptedAdapter(RetryableNotificationError("status 429", retry_after=1.3), None)
    _publish(adapter, retries=1, timeout=5)
    (gap,) = adapter.gaps()
    assert 1.25 <= gap < 1.8


def test_retry_after_beyond_the_deadline_is_ignored() -> None:
    adapter = ScriptedAdapter(RetryableNotificationError("status 429", retry_after=120), None)
    _publish(adapter, retries=1, timeout=3)
    (gap,) = adapter.gaps()
    assert 0.45 <= gap < 0.9


def test_error_messages_are_redacted() -> None:
    adapter = ScriptedAdapter(
        RetryableNotificationError("POST https://user:hunter2@hooks.example/x failed"),
        RetryableNotificationError("POST https://user:hunter2@hooks.example/x failed"),
    )
    with pytest.raises(NotificationError) as info:
        _publish(adapter, retries=1)
    assert "hunter2" not in str(info.value)
    assert "https://user:***@hooks.example/x" in str(info.value)

    final = ScriptedAdapter(OSError("cannot reach redis://:pw123@db:6379"))
    with pytest.raises(NotificationError) as info2:
        _publish(final, retries=0)
    assert "pw123" not in str(info2.value)


def test_cancel_during_a_wait_stops_at_once() -> None:
    async def scenario() -> tuple[ScriptedAdapter, float, str]:
        cancel = asyncio.Event()
        adapter = ScriptedAdapter(*[RetryableNotificationError("down") for _ in range(5)])
        asyncio.get_running_loop().call_later(0.1, cancel.set)
        start = time.monotonic()
        try:
            await publish_with_retries(adapter, EVENT, name="test", retries=4, timeout=30, cancel=cancel)
        except NotificationError as exc:
            return adapter, time.monotonic() - start, str(exc)
        raise AssertionError("no error")

    adapter, elapsed, message = asyncio.run(scenario())
    assert message == "test: canceled after 1 attempt"
    assert len(adapter.attempts) == 1
    assert elapsed < 0.4


def test_cancel_before_the_first_attempt_and_during_an_attempt() -> None:
    async def already() -> str:
        cancel = asyncio.Event()
        cancel.set()
        try:
            await publish_with_retries(ScriptedAdapter(None), EVENT, name="test", cancel=cancel)
        except NotificationError as exc:
            return str(exc)
        return "delivered"

    assert asyncio.run(already()) == "test: canceled after 0 attempts"

    async def during() -> str:
        cancel = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, cancel.set)
        try:
            await publish_with_retries(ScriptedAdapter(30.0), EVENT, name="test", timeout=20, cancel=cancel)
        except NotificationError as exc:
            return str(exc)
        return "delivered"

    start = time.monotonic()
    assert asyncio.run(during()) == "test: canceled after 1 attempt"
    assert time.monotonic() - start < 1.0


def test_deliver_notification_builds_publishes_and_closes() -> None:
    adapter = ScriptedAdapter(RetryableNotificationError("once"), None)
    config = AdapterConfig(type="scripted", url="mem://", retries=1, timeout=5)
    asyncio.run(deliver_notification(lambda _config: adapter, config, EVENT))
    assert adapter.delivered == [EVENT]
    assert adapter.closed

    failing = ScriptedAdapter(NotificationError("scripted: nope"))
    with pytest.raises(NotificationError, match=r"^scripted: nope$"):
        asyncio.run(deliver_notification(lambda _config: failing, config, EVENT))
    assert failing.closed


def test_deliver_notification_reports_a_build_error() -> None:
    def factory(config: AdapterConfig) -> ScriptedAdapter:
        raise ConfigError("bad URL https://u:secret@h/")

    config = AdapterConfig(type="scripted", url="mem://")
    with pytest.raises(NotificationError) as info:
        asyncio.run(deliver_notification(factory, config, EVENT))
    assert str(info.value) == "scripted: cannot build adapter: ConfigError: bad URL https://u:***@h/"
