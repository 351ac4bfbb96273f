"""``quarry run --adapter …`` and ``quarry adapter drain`` end to end: a real ``quarry run`` subprocess (fake
executor, real Lode files), a real HTTP receiver on 127.0.0.1, real Redis and NATS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from notify_helpers import HANG, REDIS_URL, Receiver, free_port, require_service

from e2e_helpers import ROOT, read_table


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "noop.py"
    path.write_text("async def run(ctx):\n    pass\n")
    return path


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.stop()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    env.update(extra)
    return env


def _quarry(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quarry_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or _env(),
        cwd=ROOT,
    )


def _run(script: Path, storage: Path, fake_python: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _quarry(
        "run", str(script), "--storage-path", str(storage), "--executor-python", fake_python, "--quiet", *args,
        env=_env(**env),
    )  # fmt: skip


def _drain(capfd: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``quarry adapter drain`` in-process (the console script's ``main``): far cheaper than a subprocess."""
    from quarry_core.cli import main

    capfd.readouterr()
    code = main(["adapter", "drain", "--no-config", *args])
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["quarry", "adapter", "drain", *args], code, out, err)


def test_webhook_failing_twice_then_succeeding_gets_exactly_one_delivery(
    script: Path, storage: Path, fake_python: str
) -> None:
    receiver = Receiver(script=(500, 503, 200))
    try:
        start = time.monotonic()
        proc = _run(
            script, storage, fake_python,
            "--adapter", "webhook", "--adapter-url", receiver.url, "--adapter-header", "X-Token=sekrit-value",
            "--adapter-retries", "3", "--adapter-timeout", "10s",
        )  # fmt: skip
        elapsed = time.monotonic() - start
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr
    assert [r.status for r in receiver.requests] == [500, 503, 200]
    (delivery,) = receiver.delivered
    body = delivery.json()
    assert elapsed >= 1.5  # waited 0.5 s and 1 s between the attempts
    assert len({r.body for r in receiver.requests}) == 1  # the same notification every time
    assert delivery.headers["X-Token"] == "sekrit-value"
    assert delivery.headers["Idempotency-Key"] == body["notification_id"]
    run = read_table(storage, "runs")[-1]
    assert body["run_id"] == run["run_id"] and body["outcome"] == "success" and body["exit_code"] == 0
    assert body["event_type"] == "run_completed" and body["event_count"] == 4
    assert body["storage_path"].startswith("file:///") and f"run_id={run['run_id']}" in body["storage_path"]
    # the notification comes after the data and the final run record are persisted
    assert run["state"] == "succeeded"
    assert "adapter notification failed" not in proc.stderr and "sekrit-value" not in proc.stderr


@pytest.mark.parametrize(
    ("scenario", "outcome", "code"),
    [("ok", "success", 0), ("version", "version_mismatch", 3), ("truncated", "executor_crash", 2)],
)
def test_failed_notification_warns_and_never_changes_the_exit_code(
    script: Path, storage: Path, fake_python: str, scenario: str, outcome: str, code: int
) -> None:
    receiver = Receiver(script=(404,))
    try:
        proc = _run(
            script, storage, fake_python, "--adapter", "webhook", "--adapter-url", receiver.url,
            FAKE_SCENARIO=scenario,
        )  # fmt: skip
    finally:
        receiver.stop()
    assert proc.returncode == code, proc.stderr
    (request,) = receiver.requests  # 404 is final: no retry
    assert request.json()["outcome"] == outcome and request.json()["exit_code"] == code
    assert "Warning: adapter notification failed: webhook: non-retriable status 404" in proc.stderr


def test_a_hanging_receiver_is_bounded_by_the_adapter_timeout(script: Path, storage: Path, fake_python: str) -> None:
    receiver = Receiver(script=(HANG, HANG, HANG))
    try:
        proc = _run(
            script, storage, fake_python, "--adapter", "webhook", "--adapter-url", receiver.url,
            "--adapter-timeout", "1500ms", "--adapter-retries", "5",
        )  # fmt: skip
        ended = time.monotonic()
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr
    assert "Warning: adapter notification failed: webhook: failed after 1 attempt" in proc.stderr
    # the whole publish (attempts and waits included) stays within --adapter-timeout: no second attempt fits
    (request,) = receiver.requests
    assert 1.4 <= ended - request.at < 1.5 + 3.0  # + process exit on a busy machine


def test_receiver_down_leaves_an_outbox_entry_that_drain_delivers_once_up(
    script: Path, storage: Path, fake_python: str, capfd: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    proc = _run(
        script, storage, fake_python,
        "--adapter", "webhook", "--adapter-url", url, "--adapter-retries", "1", "--adapter-outbox",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Warning: adapter notification failed: webhook: failed after 2 attempts" in proc.stderr
    rows = read_table(storage, "outbox")
    assert [(r["state"], r["attempts"]) for r in rows] == [("pending", 0), ("pending", 2)]
    assert rows[1]["last_error"].startswith("webhook: failed after 2 attempts")
    assert rows[0]["event_type"] == "adapter_outbox" and rows[0]["target"] == url
    stored = json.loads(rows[0]["payload"])
    drain = ("--storage-path", str(storage), "--adapter", "webhook", "--adapter-url", url)
    # too young: a run may still be publishing it
    young = _drain(capfd, *drain, "-f", "json")
    assert young.returncode == 0, young.stderr
    assert json.loads(young.stdout)["examined"] == 0
    # still down: failed, counted, exit 1
    down = _drain(capfd, *drain, "--older-than", "0s", "--adapter-retries", "0", "-f", "json")
    assert down.returncode == 1
    assert json.loads(down.stdout) == {"examined": 1, "delivered": 0, "failed": 1, "expired": 0, "skipped": 0}
    receiver = Receiver(port=port)
    try:
        up = _drain(capfd, *drain, "--older-than", "0s", "-f", "json")
        again = _drain(capfd, *drain, "--older-than", "0s", "-f", "json")
    finally:
        receiver.stop()
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout) == {"examined": 1, "delivered": 1, "failed": 0, "expired": 0, "skipped": 0}
    (delivery,) = receiver.requests
    assert delivery.json() == stored  # the stored payload, unchanged (same notification_id)
    assert json.loads(again.stdout)["examined"] == 0  # delivered entries are never sent again
    states = [(r["state"], r["attempts"]) for r in read_table(storage, "outbox")]
    assert states == [("pending", 0), ("pending", 2), ("pending", 3), ("delivered", 4)]


def test_drain_expires_old_entries_and_skips_other_adapters(
    script: Path, storage: Path, fake_python: str, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    proc = _run(
        script, storage, fake_python,
        "--adapter", "webhook", "--adapter-url", url, "--adapter-retries", "0", "--adapter-outbox",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    base = ("--storage-path", str(storage), "--older-than", "0s", "-f", "json")
    listed = _drain(capfd, *base, "--dry-run")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["pending"]
    assert entry["adapter"] == "webhook" and entry["attempts"] == 1
    other = _drain(capfd, *base, "--adapter", "redis", "--adapter-url", REDIS_URL)
    assert json.loads(other.stdout)["skipped"] == 1
    assert 'stored for the "webhook" adapter, not "redis"' in other.stderr
    time.sleep(1.1)
    expired = _drain(capfd, *base, "--adapter", "webhook", "--adapter-url", url, "--max-age", "1s")
    assert expired.returncode == 0, expired.stderr
    assert json.loads(expired.stdout)["expired"] == 1
    assert "expired after" in expired.stderr
    assert read_table(storage, "outbox")[-1]["state"] == "expired"
    assert json.loads(_drain(capfd, *base, "--dry-run").stdout)["examined"] == 0


def test_drain_without_an_adapter_is_a_usage_error(storage: Path, capfd: pytest.CaptureFixture[str]) -> None:
    proc = _drain(capfd, "--storage-path", str(storage))
    assert proc.returncode == 4
    assert "needs an adapter to publish with" in proc.stderr


def test_adapter_from_the_config_file_and_environment(
    script: Path, storage: Path, fake_python: str, receiver: Receiver, tmp_path: Path
) -> None:
    config = tmp_path / "quarry.toml"
    config.write_text(
        f'[adapter]\ntype = "webhook"\nurl = "{receiver.url}"\nretries = 0\n[adapter.headers]\nX-From = "config"\n'
    )
    proc = _run(
        script, storage, fake_python, "--config", str(config), "--adapter-header", "X-Cli=1",
        QUARRY_ADAPTER_HEADER="X-From=env",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (request,) = receiver.requests
    assert request.headers["X-From"] == "env" and request.headers["X-Cli"] == "1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adapter", "carrier-pigeon", "--adapter-url", "x"], 'unknown adapter "carrier-pigeon"; available: nats'),
        (["--adapter", "webhook"], "invalid adapter config: webhook adapter URL is required"),
        (["--adapter", "webhook", "--adapter-url", "ftp://h/x"], "webhook URL must use http or https"),
        (["--adapter", "webhook", "--adapter-url", "http://h/x", "--adapter-retries", "-1"], "retries must be >= 0"),
        (["--adapter", "webhook", "--adapter-url", "http://h/x", "--adapter-header", "noequals"], "KEY=VALUE"),
        (["--adapter-url", "http://h/x"], "no adapter is selected"),
        (["--adapter", "redis", "--adapter-url", "http://h:1"], "redis URL must start with redis://"),
        (["--adapter", "nats", "--adapter-url", "nats://h:1", "--adapter-option", "jetstream=perhaps"], "jetstream"),
        (
            ["--adapter", "nats", "--adapter-url", "nats://h:1", "--adapter-option", "colour=blue"],
            'unknown option "colour"',
        ),
        (["--event-sink", "kafka"], 'unknown event sink "kafka"'),
        (["--event-sink", "redis", "--event-sink", "redis", "--event-sink-redis-url", REDIS_URL], "duplicate"),
        (["--event-sink", "redis"], "redis URL is required"),
        (["--event-sink-redis-url", REDIS_URL], "--event-sink-redis-url needs --event-sink redis"),
        (["--event-sink", "redis", "--event-sink-redis-url", REDIS_URL, "--event-sink-redis-ttl", "soon"], "ttl"),
        (["--event-sink", "lode", "--event-sink-lode-delivery", "often"], "delivery must be"),
        (["--no-lode-events"], "--no-lode-events requires at least one mandatory event sink"),
    ],
)
def test_bad_adapter_and_sink_settings_exit_4_with_nothing_written(
    script: Path, storage: Path, args: list[str], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from quarry_core.cli import main

    # in-process (validation stops before anything starts): the same code path as the console script
    code = main(["run", str(script), "--storage-path", str(storage), "--no-config", *args])
    err = capfd.readouterr().err
    assert code == 4, err
    assert message in err
    assert not storage.exists()


# --------------------------------------------------------------------------------------------- event sinks


def test_redis_stream_holds_every_event_of_a_run_in_order(script: Path, storage: Path, fake_python: str) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    import redis

    key = f"quarry-test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        proc = _run(
            script, storage, fake_python, "--policy", "buffered", "--buffer-events", "7", "--source", "shop",
            "--event-sink", "redis", "--event-sink-redis-url", REDIS_URL, "--event-sink-redis-stream-key", key,
            "--event-sink-redis-ttl", "1h",
            FAKE_ITEMS="40",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        entries = [fields for _id, fields in client.xrange(key)]
        ttl = client.ttl(key)
    finally:
        client.delete(key)
        client.close()
    lode = sorted(read_table(storage, "events"), key=lambda e: e["seq"])
    assert len(entries) == len(lode) == 41
    assert [int(e["seq"]) for e in entries] == [e["seq"] for e in lode] == list(range(1, 42))
    assert [e["event_id"] for e in entries] == [e["event_id"] for e in lode]
    assert {e["source"] for e in entries} == {"shop"} and {e["category"] for e in entries} == {"default"}
    assert 3500 <= ttl <= 3600


def test_mandatory_sink_failure_is_a_policy_failure_and_best_effort_only_warns(
    script: Path, tmp_path: Path, fake_python: str
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    sink = ["--event-sink", "redis", "--event-sink-redis-url", dead, "--event-sink-redis-retries", "0",
            "--event-sink-redis-timeout", "500ms"]  # fmt: skip
    mandatory = _run(script, tmp_path / "m", fake_python, *sink)
    assert mandatory.returncode == 3, mandatory.stderr
    run = read_table(tmp_path / "m", "runs")[-1]
    assert run["outcome"] == "policy_failure"
    assert "event sink write failed: redis" in run["message"]
    best = _run(script, tmp_path / "b", fake_python, *sink, "--event-sink-redis-delivery", "best_effort")
    assert best.returncode == 0, best.stderr
    assert 'Warning: best-effort event sink "redis"' in best.stderr
    run = read_table(tmp_path / "b", "runs")[-1]
    assert run["outcome"] == "success" and dict(run["event_sink_errors"])["redis"] >= 1
    assert len(read_table(tmp_path / "b", "events")) == 4  # Lode still has every event


def test_no_lode_events_with_a_mandatory_redis_sink(script: Path, storage: Path, fake_python: str) -> None:
    require_service("127.0.0.1", 6379, "Redis")
    import redis

    key = f"quarry-test:{uuid.uuid4().hex}"
    try:
        proc = _run(
            script, storage, fake_python, "--no-lode-events",
            "--event-sink", "redis", "--event-sink-redis-url", REDIS_URL, "--event-sink-redis-stream-key", key,
        )  # fmt: skip
        count = redis.Redis.from_url(REDIS_URL).xlen(key)
    finally:
        redis.Redis.from_url(REDIS_URL).delete(key)
    assert proc.returncode == 0, proc.stderr
    assert "Warning: events will not be written to Lode" in proc.stderr
    assert count == 4
    assert read_table(storage, "events") == []
    assert read_table(storage, "runs")[-1]["outcome"] == "success"


def test_nats_jetstream_from_quarry_run(script: Path, storage: Path, fake_python: str) -> None:
    require_service("127.0.0.1", 4222, "NATS")
    import asyncio

    import nats
    from nats.js.api import StreamConfig

    subject = f"quarry.e2e.{uuid.uuid4().hex}"
    name = "QUARRY_E2E_" + uuid.uuid4().hex[:10].upper()

    async def with_stream(fn: Any) -> Any:
        nc = await nats.connect("nats://127.0.0.1:4222")
        js = nc.jetstream()
        try:
            return await fn(js)
        finally:
            await nc.close()

    async def create(js: Any) -> None:
        await js.add_stream(StreamConfig(name=name, subjects=[subject]))

    async def fetch(js: Any) -> Any:
        try:
            return await js.get_msg(name, seq=1)
        finally:
            await js.delete_stream(name)

    asyncio.run(with_stream(create))
    proc = _run(
        script, storage, fake_python, "--adapter", "nats", "--adapter-url", "nats://127.0.0.1:4222",
        "--adapter-subject", subject, "--adapter-option", "jetstream=true",
    )  # fmt: skip
    msg = asyncio.run(with_stream(fetch))
    assert proc.returncode == 0, proc.stderr
    assert "adapter notification failed" not in proc.stderr
    body = json.loads(msg.data)
    assert body["run_id"] == run_id_from_record(storage) and msg.headers["Nats-Msg-Id"] == body["notification_id"]


def run_id_from_record(storage: Path) -> str:
    rid: str = read_table(storage, "runs")[-1]["run_id"]
    return rid


@pytest.mark.browser
def test_fan_out_notifies_the_root_only_unless_notify_children(quarry: Any, site_url: str) -> None:
    from e2e_helpers import SCRIPTS

    receiver = Receiver()
    try:
        args = ("--depth", "1", "--max-runs", "2", "--adapter", "webhook", "--adapter-url", receiver.url, "--quiet")
        job = {"url": f"{site_url}/index.html"}
        root_only = quarry(SCRIPTS / "fanout_listing.py", *args, job=job)
        assert root_only.code == 0, root_only.stderr
        assert [r.json().get("depth", 0) for r in receiver.requests] == [0]
        everyone = quarry(SCRIPTS / "fanout_listing.py", *args, "--adapter-notify-children", job=job)
        assert everyone.code == 0, everyone.stderr
    finally:
        receiver.stop()
    bodies = [r.json() for r in receiver.requests[1:]]
    assert len(bodies) == 3
    root = bodies[-1]  # the root's notification comes after its children finished
    assert "depth" not in root and "spawned_by_run_id" not in root
    children = bodies[:-1]
    assert {c["depth"] for c in children} == {1}
    assert {c["spawned_by_run_id"] for c in children} == {root["run_id"]}
