"""The NATS adapter runs Quarry's adapter contract suite against a real NATS server (JetStream)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import Any

import nats
from nats.js.api import StreamConfig

from quarry_adapter_nats.hooks import make_nats_adapter
from quarry_adapter_nats_tests.conftest import NATS_URL, free_port, require_nats
from quarry_core.interfaces import AdapterConfig
from quarry_core.testing.contracts import AdapterContract


async def _js(fn: Any) -> Any:
    nc = await nats.connect(NATS_URL)
    try:
        return await fn(nc.jetstream())
    finally:
        await nc.close()


class TestNatsJetStreamAdapterContract(AdapterContract):
    """JetStream keeps what was published, so the suite can read it back after the fact."""

    factory = staticmethod(make_nats_adapter)

    def setup_method(self) -> None:
        require_nats()
        self.subject = f"quarry.contract.{uuid.uuid4().hex}"
        self.stream = "QUARRY_CONTRACT_" + uuid.uuid4().hex[:10].upper()

        async def create(js: Any) -> None:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[self.subject]))

        asyncio.run(_js(create))

    def teardown_method(self) -> None:
        async def delete(js: Any) -> None:
            await js.delete_stream(self.stream)

        asyncio.run(_js(delete))

    def make_config(self) -> AdapterConfig:
        options = {"subject": self.subject, "jetstream": True}
        return AdapterConfig(type="nats", url=NATS_URL, options=options, retries=0)

    def make_failing_config(self) -> AdapterConfig:
        url = f"nats://quarry:{self.secret}@127.0.0.1:{free_port()}"
        return AdapterConfig(type="nats", url=url, retries=0, timeout=2)

    def received(self) -> list[Mapping[str, Any]]:
        async def read(js: Any) -> list[Mapping[str, Any]]:
            info = await js.stream_info(self.stream)
            return [json.loads((await js.get_msg(self.stream, seq=i)).data) for i in range(1, info.state.messages + 1)]

        result: list[Mapping[str, Any]] = asyncio.run(_js(read))
        return result
