"""Registration, validation and the cheap entry point of quarry-adapter-webhook."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import quarry_adapter_webhook
from quarry_adapter_webhook import hooks
from quarry_adapter_webhook.adapter import WebhookAdapter
from quarry_core.errors import ConfigError
from quarry_core.interfaces import AdapterConfig, NotificationAdapter
from quarry_core.plugins import PluginHost
from quarry_core.registrations import NotificationAdapterPlugin


def test_registers_webhook() -> None:
    (plugin,) = list(hooks.quarry_notification_adapters())
    assert isinstance(plugin, NotificationAdapterPlugin)
    assert plugin.name == "webhook"
    assert plugin.summary
    assert plugin.validate is hooks.validate_webhook_config
    adapter = plugin.factory(AdapterConfig(type="webhook", url="https://example.com/hook"))
    assert isinstance(adapter, WebhookAdapter)
    _: NotificationAdapter = adapter
    asyncio.run(adapter.close())


def test_entry_point_is_discovered() -> None:
    host = PluginHost.build()
    assert host.available("notification_adapter")["webhook"] == "quarry-adapter-webhook"


def test_hooks_module_imports_nothing_heavy() -> None:
    code = "import sys, quarry_adapter_webhook.hooks; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "webhook adapter URL is required"),
        ("ftp://example.com/x", "must use http or https"),
        ("example.com/hook", "must use http or https"),
        ("https:///nohost", "has no host"),
        ("http://example.com:99999/x", "invalid webhook URL"),
    ],
)
def test_validate_rejects_bad_urls(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid adapter config: ") as info:
        hooks.validate_webhook_config(AdapterConfig(type="webhook", url=url))
    assert reason in str(info.value)


def test_validate_redacts_credentials() -> None:
    with pytest.raises(ConfigError) as info:
        hooks.validate_webhook_config(AdapterConfig(type="webhook", url="ftp://bob:s3cret@example.com/x"))
    assert "s3cret" not in str(info.value)
    assert "bob:***@" in str(info.value)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (AdapterConfig(type="webhook", url="https://h/x", timeout=0), "timeout must be > 0"),
        (AdapterConfig(type="webhook", url="https://h/x", timeout=-1), "timeout must be > 0"),
        (AdapterConfig(type="webhook", url="https://h/x", retries=-1), "retries must be >= 0"),
        (AdapterConfig(type="webhook", url="https://h/x", headers={"": "v"}), "header name must not be empty"),
        (AdapterConfig(type="webhook", url="https://h/x", headers={" ": "v"}), "header name must not be empty"),
    ],
)
def test_validate_rejects_bad_settings(config: AdapterConfig, reason: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid adapter config: ") as info:
        hooks.validate_webhook_config(config)
    assert reason in str(info.value)


def test_validate_accepts_good_config() -> None:
    hooks.validate_webhook_config(
        AdapterConfig(type="webhook", url="https://u:p@example.com/hook", headers={"X-A": "1"}, retries=0)
    )


def test_package_exports() -> None:
    assert quarry_adapter_webhook.__all__ == sorted(quarry_adapter_webhook.__all__)
    assert quarry_adapter_webhook.WebhookAdapter is WebhookAdapter
    for name in quarry_adapter_webhook.__all__:
        assert hasattr(quarry_adapter_webhook, name)
    assert set(hooks.__all__) <= set(vars(hooks))
    with pytest.raises(AttributeError):
        _ = quarry_adapter_webhook.Nope  # type: ignore[attr-defined]
