"""Several notification adapters per run (issue 9: ``--adapter NAME`` is repeatable) end to end: a real
``quarry run`` subprocess (fake executor, real Lode files), a real HTTP receiver on 127.0.0.1 and real Redis
pub/sub. Each adapter is delivered independently: one failing or hanging never blocks or changes another, the outbox
keeps one entry per adapter and ``quarry adapter drain`` retries only what did not arrive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
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


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    env.update(extra)
    return env


def _run(script: Path, storage: Path, fake_python: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", str(script), "--storage-path", str(storage),
           "--executor-python", fake_python, "--quiet", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=_env(**env), cwd=ROOT)


def _drain(capfd: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``quarry adapter drain`` in-process (the console script's ``main``)."""
    from quarry_core.cli import main

    capfd.readouterr()
    code = main(["adapter", "drain", "--no-config", *args])
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(["quarry", "adapter", "drain", *args], code, out, err)


class Subscriber:
    """A real Redis pub/sub subscriber on one channel, recording (arrival time, message) in a thread."""

    def __init__(self, channel: str) -> None:
        import redis

        self.client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            msg = self.pubsub.get_message(timeout=0.05)
            if msg is not None and msg["type"] == "message":
                self.messages.append((time.monotonic(), json.loads(msg["data"])))

    def settle(self, seconds: float = 0.5) -> None:
        time.sleep(seconds)  # let a late (duplicate) message arrive before counting

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def subscriber() -> Iterator[tuple[str, Subscriber]]:
    require_service("127.0.0.1", 6379, "Redis")
    channel = f"quarry-test:{uuid.uuid4().hex}"
    sub = Subscriber(channel)
    yield channel, sub
    sub.stop()


def test_a_hanging_webhook_never_blocks_redis_which_gets_exactly_one_delivery(
    script: Path,
    storage: Path,
    fake_python: str,
    subscriber: tuple[str, Subscriber],
    capfd: pytest.CaptureFixture[str],
) -> None:
    channel, sub = subscriber
    port = free_port()
    hook = f"http://127.0.0.1:{port}/hook"
    receiver = Receiver(port=port, script=(HANG,))
    try:
        proc = _run(
            script, storage, fake_python,
            "--adapter", "webhook", "--adapter", "redis", "--adapter-outbox",
            "--adapter-option", f"webhook.url={hook}", "--adapter-option", "webhook.timeout=3s",
            "--adapter-option", "webhook.retries=0", "--adapter-option", "webhook.header.X-Token=sekrit-value",
            "--adapter-option", f"redis.url={REDIS_URL}", "--adapter-option", f"redis.channel={channel}",
        )  # fmt: skip
        sub.settle()
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr  # a failed notification never changes the exit code
    (hung,) = receiver.requests
    ((arrived, message),) = sub.messages  # exactly one delivery to the adapter that works
    assert message == hung.json()  # one event, the same body and notification_id for every adapter
    assert arrived - hung.at < 2.0, "redis waited for the hanging webhook"  # the webhook timeout is 3 s
    assert hung.headers["X-Token"] == "sekrit-value" and hung.headers["Idempotency-Key"] == message["notification_id"]
    assert "Warning: adapter notification failed: webhook:" in proc.stderr
    assert "redis" not in proc.stderr.split("adapter notification failed")[-1].split("\n")[0]
    assert "sekrit-value" not in proc.stderr

    # one outbox entry per adapter: redis delivered, the webhook still pending
    rows = read_table(storage, "outbox")
    latest = {r["adapter"]: (r["state"], r["attempts"]) for r in sorted(rows, key=lambda r: r["recorded_at"])}
    assert latest == {"webhook": ("pending", 1), "redis": ("delivered", 1)}
    assert {r["notification_id"] for r in rows} == {message["notification_id"]}
    for table in ("outbox", "runs", "metrics", "events"):  # the header value given as an option is never stored
        assert all("sekrit-value" not in json.dumps(r, default=str) for r in read_table(storage, table)), table

    # the receiver is back: drain with both adapters delivers the webhook once and never re-sends to redis
    drain = (
        "--storage-path", str(storage), "--older-than", "0s", "-f", "json",
        "--adapter", "webhook", "--adapter", "redis",
        "--adapter-option", f"webhook.url={hook}", "--adapter-option", "webhook.header.X-Token=sekrit-value",
        "--adapter-option", f"redis.url={REDIS_URL}", "--adapter-option", f"redis.channel={channel}",
    )  # fmt: skip
    up = Receiver(port=port)
    try:
        first = _drain(capfd, *drain)
        again = _drain(capfd, *drain)
        sub.settle()
    finally:
        up.stop()
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"examined": 1, "delivered": 1, "failed": 0, "expired": 0, "skipped": 0}
    assert json.loads(again.stdout)["examined"] == 0
    (delivery,) = up.requests
    assert delivery.json() == message and delivery.headers["X-Token"] == "sekrit-value"
    assert len(sub.messages) == 1  # redis had its delivery; the drain did not repeat it


def test_two_named_webhooks_from_the_config_file_each_with_its_own_settings(
    script: Path, storage: Path, fake_python: str, tmp_path: Path
) -> None:
    primary, audit = Receiver(), Receiver(script=(404,))
    config = tmp_path / "quarry.toml"
    config.write_text(
        "[adapter]\noutbox = true\n"
        f'[[adapters]]\nname = "primary"\ntype = "webhook"\nurl = "{primary.url}"\nretries = 0\n'
        '[adapters.headers]\nX-Sink = "primary"\n'
        f'[[adapters]]\nname = "audit"\ntype = "webhook"\nurl = "{audit.url}"\nretries = 0\n'
        '[adapters.headers]\nX-Sink = "${AUDIT_SINK}"\n'
    )
    try:
        both = _run(script, storage, fake_python, "--config", str(config), AUDIT_SINK="audit")
        # --adapter picks one configured entry by name; only it is notified
        only = _run(script, tmp_path / "only", fake_python, "--config", str(config), "--adapter", "primary")
    finally:
        primary.stop()
        audit.stop()
    assert both.returncode == 0 and only.returncode == 0, both.stderr + only.stderr
    assert [r.headers["X-Sink"] for r in primary.requests] == ["primary", "primary"]
    (refused,) = audit.requests
    assert refused.headers["X-Sink"] == "audit"
    assert refused.json() == primary.requests[0].json()
    assert "Warning: adapter notification failed: audit: webhook: non-retriable status 404" in both.stderr
    latest = {r["adapter"]: r["state"] for r in sorted(read_table(storage, "outbox"), key=lambda r: r["recorded_at"])}
    assert latest == {"primary": "delivered", "audit": "pending"}
    assert {r["adapter"] for r in read_table(tmp_path / "only", "outbox")} == {"primary"}


UNKNOWN_OPTION = ["--adapter", "webhook", "--adapter", "nats", "--adapter-option", "webhook.url=http://h/x",
                  "--adapter-option", "nats.url=nats://h:1", "--adapter-option", "nats.colour=red"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (
            ["--adapter", "webhook", "--adapter", "redis", "--adapter-url", "http://h/x"],
            "",
            "--adapter-url (adapter.url) applies to one adapter, but 2 are selected (webhook, redis); "
            "set it per adapter: --adapter-option webhook.url=VALUE",
        ),
        (
            ["--adapter", "webhook", "--adapter", "redis", "--adapter-header", "A=b"],
            "",
            "--adapter-header (adapter.headers) applies to one adapter",
        ),
        (
            ["--adapter", "webhook", "--adapter", "webhook", "--adapter-url", "http://h/x"],
            "",
            'adapter "webhook" is selected twice',
        ),
        (
            ["--adapter", "webhook", "--adapter", "redis", "--adapter-option", "webhook.url=http://h/x"],
            "",
            "invalid adapter config: redis: redis adapter URL is required",
        ),
        (
            UNKNOWN_OPTION,
            "",
            'invalid adapter config: nats: unknown option "colour"',
        ),
        (
            [],
            '[[adapters]]\ntype = "webhook"\nurl = "http://a/x"\n[[adapters]]\ntype = "webhook"\nurl = "http://b/x"\n',
            'two [[adapters]] entries are named "webhook"; give each a distinct name',
        ),
    ],
    ids=["url-ambiguous", "header-ambiguous", "twice", "missing-url", "unknown-option", "duplicate-entries"],
)
def test_bad_multi_adapter_settings_exit_4_with_nothing_written(
    script: Path, storage: Path, fake_python: str, tmp_path: Path, args: list[str], config: str, message: str
) -> None:
    extra = []
    if config:
        path = tmp_path / "quarry.toml"
        path.write_text(config)
        extra = ["--config", str(path)]
    proc = _run(script, storage, fake_python, *extra, *args)
    assert proc.returncode == 4, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not storage.exists()
