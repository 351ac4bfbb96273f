"""Quarry hooks of quarry-adapter-example (entry point ``adapter-example``). Registration only: cheap to import."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from quarry_core import hookimpl
from quarry_core.errors import ConfigError
from quarry_core.registrations import NotificationAdapterPlugin, PluginOption

if TYPE_CHECKING:
    from quarry_core.interfaces import AdapterConfig, NotificationAdapter

__all__ = ["OPTIONS", "make_adapter", "quarry_notification_adapters", "validate"]

#: What the adapter reads from ``AdapterConfig.options``; Quarry turns these into ``--adapter-option`` values,
#: ``QUARRY_ADAPTER_OPTION`` and ``adapter.options.*`` keys, converted to these kinds.
OPTIONS = (
    PluginOption("fields", summary="comma-separated event keys to keep (default: all)"),
    PluginOption(
        "fail_first", kind="integer", summary="fail this many attempts first (demonstrates retries)", default=0
    ),
)


def validate(config: AdapterConfig) -> None:
    """Reject settings the adapter cannot use before the run starts (exit 4)."""
    from quarry_adapter_example.adapter import target_path

    target_path(config.url)
    fail_first = config.options.get("fail_first", 0)
    if fail_first < 0:
        raise ConfigError(f"invalid adapter config: example fail_first must be >= 0, got {fail_first}")


def make_adapter(config: AdapterConfig) -> NotificationAdapter:
    from quarry_adapter_example.adapter import JsonLinesAdapter  # imported only when a run selects the adapter

    return JsonLinesAdapter(config)


@hookimpl
def quarry_notification_adapters() -> Iterator[NotificationAdapterPlugin]:
    yield NotificationAdapterPlugin(
        name="example",
        factory=make_adapter,
        summary="append each run_completed event to a JSON Lines file (example third-party plugin)",
        validate=validate,
        options=OPTIONS,
    )
