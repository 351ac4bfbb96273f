"""Frozen records that registration hooks yield (CONTRACT_INTEGRATION §7).

Each record has a unique ``name`` per kind, a ``factory`` the host calls lazily, and a one-line ``summary``.
The host adds the providing distribution; plugins never set it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

__all__ = [
    "KINDS",
    "CliCommandPlugin",
    "EventSinkPlugin",
    "ExecutorPlugin",
    "IngestionPolicyPlugin",
    "NotificationAdapterPlugin",
    "ProxySelectorPlugin",
    "ProxyStateStorePlugin",
    "Registration",
    "StorageBackendPlugin",
]


def _name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValueError(f"{type(instance).__name__}.name must be a non-empty string without surrounding spaces")


@attrs.frozen
class IngestionPolicyPlugin:
    """An ingestion policy. ``factory(PolicyConfig, Sink, PolicyContext) -> IngestionPolicy``.

    ``validate(PolicyConfig)`` raises ``ConfigError`` for impossible settings before anything runs (exit 4);
    ``option_names`` are the ``policy.*`` settings it reads, so the CLI can warn about flags that do not apply.
    """

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""
    validate: Callable[[Any], None] | None = None
    option_names: frozenset[str] = frozenset()


@attrs.frozen
class StorageBackendPlugin:
    """A storage backend. ``factory(StorageConfig) -> StorageBackend``; ``aliases`` select it too.

    ``validate(StorageConfig)`` raises ``ConfigError`` before anything runs; ``prepare(StorageConfig)`` creates
    what the backend needs (a local directory) once every other check passed.
    """

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""
    aliases: tuple[str, ...] = ()
    validate: Callable[[Any], None] | None = None
    prepare: Callable[[Any], None] | None = None


@attrs.frozen
class NotificationAdapterPlugin:
    """A notification adapter. ``factory(AdapterConfig) -> NotificationAdapter``."""

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""
    validate: Callable[[Any], None] | None = None


@attrs.frozen
class EventSinkPlugin:
    """An event sink fed every batch during the run. ``factory(EventSinkConfig) -> EventSink``."""

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""
    validate: Callable[[Any], None] | None = None


@attrs.frozen
class ProxySelectorPlugin:
    """A proxy selection strategy. ``factory() -> ProxyStrategy``."""

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""


@attrs.frozen
class ProxyStateStorePlugin:
    """Where proxy selection state lives. ``factory(StateStoreConfig) -> ProxyStateStore``."""

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""


@attrs.frozen
class ExecutorPlugin:
    """An executor. ``factory(ExecutorConfig) -> ExecutorLauncher``."""

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""


@attrs.frozen
class CliCommandPlugin:
    """A command group mounted under ``quarry <name>``. ``factory() -> typer.Typer``."""

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""


Registration = (
    IngestionPolicyPlugin
    | StorageBackendPlugin
    | NotificationAdapterPlugin
    | EventSinkPlugin
    | ProxySelectorPlugin
    | ProxyStateStorePlugin
    | ExecutorPlugin
    | CliCommandPlugin
)

#: kind name -> (hook name, record type). The kind names are what ``quarry plugins --kind`` accepts.
KINDS: dict[str, tuple[str, type[Any]]] = {
    "ingestion_policy": ("quarry_ingestion_policies", IngestionPolicyPlugin),
    "storage_backend": ("quarry_storage_backends", StorageBackendPlugin),
    "notification_adapter": ("quarry_notification_adapters", NotificationAdapterPlugin),
    "event_sink": ("quarry_event_sinks", EventSinkPlugin),
    "proxy_selector": ("quarry_proxy_selectors", ProxySelectorPlugin),
    "proxy_state_store": ("quarry_proxy_state_stores", ProxyStateStorePlugin),
    "executor": ("quarry_executors", ExecutorPlugin),
    "cli_command": ("quarry_cli_commands", CliCommandPlugin),
}
