"""``RunProxy`` (CONTRACT_PROXY §7): one ``proxy_update`` per ``rotate_proxy``, through the plugin host's real
strategies and stores (file store on disk, a Redis URL nobody listens on)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from quarry_core.config import ConfigView
from quarry_core.errors import ConfigError
from quarry_core.plugins import PluginHost
from quarry_core.protocol.frames import Event
from quarry_core.runtime.proxying import RunProxy, open_selector, report_fields, resolve_proxy

PASSWORD = "s3cr3t-Zq9"


def _endpoint(host: str) -> dict[str, object]:
    return {"protocol": "http", "host": host, "port": 3128, "username": "u", "password": PASSWORD}


def _view(hosts: list[str], store: dict[str, object], **proxy: object) -> ConfigView:
    return ConfigView(
        values={
            "proxies": {"pool": {"strategy": "round_robin", "endpoints": [_endpoint(h) for h in hosts]}},
            "proxy": {"pool": "pool", "state_store": store, **proxy},
        }
    )


def _event(seq: int) -> Event:
    return Event(
        event_id=f"e{seq}",
        type="rotate_proxy",
        run_id="r1",
        seq=seq,
        attempt=1,
        ts="2026-01-01T00:00:00.000Z",
        payload={},
    )


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.build()


def test_rotations_answer_in_order_until_the_limit(host: PluginHost, tmp_path: Path) -> None:
    settings = resolve_proxy(
        _view(["a", "b", "c"], {"type": "file", "path": str(tmp_path)}, max_rotations_per_run=2), host
    )
    assert settings is not None

    async def scenario() -> None:
        proxy = await RunProxy.start(settings, host, run_id="r1", job={}, job_id=None)
        assert proxy.endpoint_dict["host"] == "a" and proxy.endpoint_dict["password"] == PASSWORD
        replies = [await proxy.on_rotate(_event(seq)) for seq in (3, 7, 9)]
        assert [(r.seq, r.ok, r.changed) for r in replies] == [(3, True, True), (7, True, True), (9, False, False)]
        assert [r.proxy["host"] for r in replies[:2] if r.proxy] == ["b", "c"]
        assert replies[2].error == "rotation limit reached"
        fields = report_fields(proxy)
        assert fields["proxy_rotations"] == 2 and fields["proxy_used"]["host"] == "c"
        assert [e["host"] for e in fields["proxy_endpoints"]] == ["a", "b", "c"]
        assert PASSWORD not in repr(fields) + repr(proxy) + repr(settings)
        # the executor's own report of the endpoint in use wins, redacted
        assert report_fields(proxy, _endpoint("z"))["proxy_used"] == {
            "protocol": "http",
            "host": "z",
            "port": 3128,
            "username": "u",
        }
        await proxy.aclose()

    asyncio.run(scenario())


def test_one_endpoint_pool_answers_unchanged(host: PluginHost, tmp_path: Path) -> None:
    settings = resolve_proxy(_view(["only"], {"type": "memory"}), host)
    assert settings is not None

    async def scenario() -> None:
        proxy = await RunProxy.start(settings, host, run_id="r1", job={}, job_id="j")
        reply = await proxy.on_rotate(_event(1))
        assert (reply.ok, reply.changed, proxy.rotations) == (True, False, 0)

    asyncio.run(scenario())


def test_store_errors_fail_selection_and_refuse_rotation(host: PluginHost) -> None:
    ok_settings = resolve_proxy(_view(["a", "b"], {"type": "memory"}), host)
    bad_settings = resolve_proxy(_view(["a", "b"], {"type": "redis", "url": "redis://127.0.0.1:1/0"}), host)
    assert ok_settings is not None and bad_settings is not None

    async def scenario() -> None:
        with pytest.raises(ConfigError, match=r"^proxy selection failed: redis state store .* unavailable"):
            await RunProxy.start(bad_settings, host, run_id="r1", job={}, job_id=None)
        proxy = await RunProxy.start(ok_settings, host, run_id="r1", job={}, job_id=None)
        before = proxy.current.endpoint
        proxy.selector = open_selector(bad_settings.pools, bad_settings.store, host)  # the store goes away mid-run
        reply = await proxy.on_rotate(_event(4))
        assert (reply.seq, reply.ok, reply.changed) == (4, False, False)
        assert "redis state store redis://127.0.0.1:1/0 unavailable" in (reply.error or "")
        assert proxy.current.endpoint == before and proxy.rotations == 0

    asyncio.run(scenario())
