"""The webhook adapter runs Quarry's adapter contract suite against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from quarry_adapter_webhook.hooks import make_webhook_adapter
from quarry_adapter_webhook_tests.conftest import Receiver
from quarry_core.interfaces import AdapterConfig
from quarry_core.testing.contracts import AdapterContract


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TestWebhookAdapterContract(AdapterContract):
    factory = staticmethod(make_webhook_adapter)

    def setup_method(self) -> None:
        self.receiver = Receiver()
        self.receiver.start()

    def teardown_method(self) -> None:
        self.receiver.stop()

    def make_config(self) -> AdapterConfig:
        return AdapterConfig(type="webhook", url=self.receiver.url, retries=0)

    def make_failing_config(self) -> AdapterConfig:
        self.receiver.respond((401, {}))
        url = self.receiver.url.replace("http://", "http://quarry:contract@")
        return AdapterConfig(type="webhook", url=url, headers={"Authorization": f"Bearer {self.secret}"}, retries=0)

    def received(self) -> list[Mapping[str, Any]]:
        return [r.json() for r in self.receiver.requests]


class TestWebhookUnreachableContract(TestWebhookAdapterContract):
    """The same suite when the failure is a refused connection (retried, then raised)."""

    def make_failing_config(self) -> AdapterConfig:
        url = f"http://quarry:{self.secret}@127.0.0.1:{_free_port()}/hook"
        return AdapterConfig(type="webhook", url=url, retries=1, timeout=3)
