"""Entry point of quarry-adapter-webhook (``[project.entry-points.quarry] adapter-webhook``).

Imports nothing heavy: httpx is imported inside the factory, when a run actually notifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from quarry_core import hookimpl
from quarry_core.errors import ConfigError
from quarry_core.notify import check_adapter_config, redact_url
from quarry_core.registrations import NotificationAdapterPlugin

if TYPE_CHECKING:
    from quarry_core.interfaces import AdapterConfig, NotificationAdapter

__all__ = ["make_webhook_adapter", "quarry_notification_adapters", "validate_webhook_config"]


def make_webhook_adapter(config: AdapterConfig) -> NotificationAdapter:
    """Factory of the ``webhook`` adapter: ``(AdapterConfig) -> NotificationAdapter``."""
    from quarry_adapter_webhook.adapter import WebhookAdapter

    return WebhookAdapter(config)


def validate_webhook_config(config: AdapterConfig) -> None:
    """Raise ``ConfigError("invalid adapter config: <reason>")`` for settings the webhook cannot use.

    The URL is required and ``http``/``https`` with a host; ``timeout`` > 0; ``retries`` >= 0; header names are
    non-empty. Messages never contain URL credentials or header values.
    """
    check_adapter_config(config)
    try:
        parts = urlsplit(config.url.strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ConfigError(f"invalid adapter config: invalid webhook URL {redact_url(config.url)!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"invalid adapter config: webhook URL must use http or https, got {redact_url(config.url)!r}")
    if not parts.hostname:
        raise ConfigError(f"invalid adapter config: webhook URL has no host: {redact_url(config.url)!r}")


@hookimpl
def quarry_notification_adapters() -> Iterator[NotificationAdapterPlugin]:
    yield NotificationAdapterPlugin(
        name="webhook",
        factory=make_webhook_adapter,
        summary="POST the run_completed event as JSON to an HTTP(S) endpoint",
        validate=validate_webhook_config,
        uses_headers=True,
    )
