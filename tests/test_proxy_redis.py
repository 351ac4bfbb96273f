"""The shared Redis state store (CONTRACT_PROXY §6): two processes select concurrently from one ``random`` pool
with ``recency_window = 2`` over three endpoints through the real Redis at 127.0.0.1:6379; in commit order no
endpoint repeats inside the window. Then ``quarry inspect proxy`` and ``quarry debug resolve proxy`` read the
same store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_helpers import ROOT

REDIS_URL = "redis://127.0.0.1:6379/0"
PER_PROCESS = 25
PASSWORD = "s3cr3t-Zq9"

WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from quarry_core.proxy import ProxySelector, SelectRequest, StateStoreConfig, load_pools
    from quarry_core.proxy.redis_store import RedisStateStore

    prefix, go_file, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pw = os.environ["QUARRY_TEST_PROXY_PW"]
    endpoints = [
        {"protocol": "http", "host": f"p{i}.example", "port": 8080, "username": "u", "password": pw}
        for i in range(3)
    ]
    pools, _ = load_pools({"shop": {"strategy": "random", "recency_window": 2, "endpoints": endpoints}})
    store = RedisStateStore.from_config(StateStoreConfig(type="redis", url=sys.argv[4], key_prefix=prefix))

    async def main():
        selector = ProxySelector(pools, store)
        await store.read(pools["shop"])  # connect before the start line
        while not os.path.exists(go_file):
            time.sleep(0.001)
        picks = await asyncio.gather(*(selector.select(SelectRequest(pool="shop")) for _ in range(count)))
        await store.aclose()
        for p in picks:
            print(json.dumps({"sequence": p.sequence, "index": p.index}))

    asyncio.run(main())
    """
)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no Redis at 127.0.0.1:6379 (CI=true: .ci/run must start it): {exc}")
        print("SKIP: no Redis at 127.0.0.1:6379")
        pytest.skip("no Redis at 127.0.0.1:6379")
    prefix = f"quarry-test:{uuid.uuid4().hex}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def test_two_processes_share_the_recency_window_through_redis(redis_prefix: str, tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    go = tmp_path / "go"
    env = {**os.environ, "QUARRY_TEST_PROXY_PW": PASSWORD}
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), redis_prefix, str(go), str(PER_PROCESS), REDIS_URL],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    time.sleep(1.0)  # both processes importing and connected, then released together
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    picks = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
    assert len(picks) == 2 * PER_PROCESS
    by_sequence = sorted(picks, key=lambda p: p["sequence"])
    # atomic choose + mark: every selection got its own commit position 1..50
    assert [p["sequence"] for p in by_sequence] == list(range(1, 2 * PER_PROCESS + 1))
    order = [p["index"] for p in by_sequence]
    for i, index in enumerate(order):
        window = order[max(0, i - 2) : i]
        assert index not in window, f"selection {i + 1} repeated endpoint {index} within the window: {order}"

    import redis

    client = redis.Redis.from_url(REDIS_URL)
    raw = client.get(f"{redis_prefix}:shop")
    client.close()
    assert raw is not None and PASSWORD.encode() not in raw
    state = json.loads(raw)
    assert state["selections"] == 2 * PER_PROCESS and state["recent"] == order[-2:]

    # the read side sees the same shared state
    config = tmp_path / "quarry.toml"
    endpoints = ",\n".join(
        f'  {{ protocol = "http", host = "p{i}.example", port = 8080, username = "u", '
        'password = "${QUARRY_TEST_PROXY_PW}" }'
        for i in range(3)
    )
    config.write_text(
        f'[proxies.shop]\nstrategy = "random"\nrecency_window = 2\nendpoints = [\n{endpoints}\n]\n'
        f'[proxy]\nstate_store = {{ type = "redis", url = "{REDIS_URL}", key_prefix = "{redis_prefix}" }}\n'
    )
    base = [sys.executable, "-m", "quarry_core.cli"]
    shown = subprocess.run(
        [*base, "inspect", "proxy", "shop", "--config", str(config), "-f", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    described = json.loads(shown.stdout)
    assert described["state_store"] == "redis"
    assert described["runtime"]["selections"] == 2 * PER_PROCESS
    assert described["runtime"]["recency_window"] == 2 and described["runtime"]["recency_fill"] == 2
    assert [e["password_set"] for e in described["endpoints"]] == [True, True, True]
    resolved = subprocess.run(
        [*base, "debug", "resolve", "proxy", "shop", "--config", str(config), "--commit", "-f", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert resolved.returncode == 0, resolved.stderr
    chosen = json.loads(resolved.stdout)
    assert chosen["committed"] is True and chosen["index"] not in order[-2:]
    assert PASSWORD not in shown.stdout + shown.stderr + resolved.stdout + resolved.stderr
