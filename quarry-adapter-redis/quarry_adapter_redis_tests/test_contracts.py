"""The Redis adapter and Redis Streams sink run Quarry's contract suites against a real Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import redis

from quarry_adapter_redis.hooks import make_redis_adapter, make_redis_sink
from quarry_adapter_redis_tests.conftest import REDIS_URL, free_port, require_redis
from quarry_core.interfaces import AdapterConfig, EventSinkConfig
from quarry_core.testing.contracts import AdapterContract, EventSinkContract


class TestRedisSinkContract(EventSinkContract):
    factory = staticmethod(make_redis_sink)

    def setup_method(self) -> None:
        require_redis()
        self.key = f"quarry-test:{uuid.uuid4().hex}"

    def teardown_method(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(self.key)
        client.close()

    def make_config(self) -> EventSinkConfig:
        options = {"stream_key": self.key, "source": "s", "category": "c"}
        return EventSinkConfig(type="redis", url=REDIS_URL, options=options)

    def make_failing_config(self) -> EventSinkConfig:
        options = {"stream_key": self.key, "source": "s", "category": "c", "retries": 0, "timeout": 0.5}
        return EventSinkConfig(type="redis", url=f"redis://127.0.0.1:{free_port()}/0", options=options)

    def stored(self, run_id: str) -> list[int]:
        client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            return [int(f["seq"]) for _id, f in client.xrange(self.key) if f["run_id"] == run_id]
        finally:
            client.close()


class TestRedisAdapterContract(AdapterContract):
    factory = staticmethod(make_redis_adapter)

    def setup_method(self) -> None:
        """Subscribe before the suite publishes; pub/sub keeps nothing for late subscribers."""
        require_redis()
        self.channel = f"quarry-test:{uuid.uuid4().hex}"
        self.client = redis.Redis.from_url(REDIS_URL)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(self.channel)
        self.pubsub.get_message(timeout=1)

    def teardown_method(self) -> None:
        self.pubsub.close()
        self.client.close()

    def make_config(self) -> AdapterConfig:
        return AdapterConfig(type="redis", url=REDIS_URL, options={"channel": self.channel}, retries=0)

    def make_failing_config(self) -> AdapterConfig:
        url = f"redis://:{self.secret}@127.0.0.1:{free_port()}/0"
        return AdapterConfig(type="redis", url=url, retries=0, timeout=2)

    def received(self) -> list[Mapping[str, Any]]:
        out = []
        while (message := self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
            out.append(json.loads(message["data"]))
        return out
