"""Entry point of quarry-adapter-nats (``[project.entry-points.quarry] adapter-nats``).

Registers notification adapter ``nats``. Imports nothing heavy: nats-py is imported inside the factory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from quarry_adapter_nats.config import DEFAULT_SUBJECT, jetstream_enabled, nats_servers, nats_subject
from quarry_core import hookimpl
from quarry_core.notify import check_adapter_config
from quarry_core.registrations import NotificationAdapterPlugin, PluginOption

if TYPE_CHECKING:
    from quarry_core.interfaces import AdapterConfig, NotificationAdapter

__all__ = ["make_nats_adapter", "quarry_notification_adapters", "validate_nats_config"]


def make_nats_adapter(config: AdapterConfig) -> NotificationAdapter:
    """Factory of the ``nats`` adapter: ``(AdapterConfig) -> NotificationAdapter``."""
    from quarry_adapter_nats.adapter import NatsAdapter

    return NatsAdapter(config)


def validate_nats_config(config: AdapterConfig) -> None:
    """``ConfigError("invalid adapter config: …")``: URL(s), timeout, retries, subject and ``jetstream``."""
    check_adapter_config(config)
    nats_servers(config.url)
    nats_subject(config.options)
    jetstream_enabled(config.options)


@hookimpl
def quarry_notification_adapters() -> Iterator[NotificationAdapterPlugin]:
    yield NotificationAdapterPlugin(
        name="nats",
        factory=make_nats_adapter,
        summary="publish the run_completed event on NATS (core, or JetStream with an ack)",
        validate=validate_nats_config,
        options=(
            PluginOption("subject", summary="subject to publish to (--adapter-subject)", default=DEFAULT_SUBJECT),
            PluginOption("jetstream", kind="boolean", summary="JetStream publish awaiting the ack", default=False),
        ),
    )
