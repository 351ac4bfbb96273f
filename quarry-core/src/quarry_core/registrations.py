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
    "OPTION_KINDS",
    "CliCommandPlugin",
    "EventSinkPlugin",
    "ExecutorPlugin",
    "IngestionPolicyPlugin",
    "NotificationAdapterPlugin",
    "PluginOption",
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
    what the backend needs (a local directory) once every other check passed; ``reader(StorageConfig)`` opens
    the stored data read-only for the read-side commands (``quarry list``, ``inspect``, ``stats``, ``export``).
    """

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""
    aliases: tuple[str, ...] = ()
    validate: Callable[[Any], None] | None = None
    prepare: Callable[[Any], None] | None = None
    reader: Callable[[Any], Any] | None = None


#: The value kinds a :class:`PluginOption` may declare.
OPTION_KINDS = ("string", "integer", "number", "boolean", "duration")


def _option_kind(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in OPTION_KINDS:
        raise ValueError(f"PluginOption.kind must be one of {', '.join(OPTION_KINDS)}, got {value!r}")


@attrs.frozen
class PluginOption:
    """One setting a notification adapter or event sink reads from its ``options`` (CONTRACT_INTEGRATION §6.4).

    Declaring it gives the plugin a command-line value (``--adapter-option name=value``,
    ``--event-sink-option <sink>.name=value``), an environment value and a config key (``adapter.options.name``,
    ``events.sinks[].options.name``) without any change to Quarry. The CLI converts text to ``kind``
    (``duration``: seconds as a float, ``"500ms"``/``"2s"``; ``-1`` is kept as is), rejects undeclared names
    and leaves absent options out (``default`` is documentation, the plugin applies it).
    """

    name: str = attrs.field(validator=_name)
    kind: str = attrs.field(default="string", validator=_option_kind)
    summary: str = ""
    default: Any = None


@attrs.frozen
class NotificationAdapterPlugin:
    """A notification adapter. ``factory(AdapterConfig) -> NotificationAdapter``.

    ``options`` declares what the adapter reads from ``AdapterConfig.options`` (see :class:`PluginOption`);
    ``uses_headers`` says it sends ``--adapter-header``s (otherwise they are ignored with a warning).
    """

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""
    validate: Callable[[Any], None] | None = None
    options: tuple[PluginOption, ...] = ()
    uses_headers: bool = False


@attrs.frozen
class EventSinkPlugin:
    """An event sink fed every batch during the run. ``factory(EventSinkConfig) -> EventSink``.

    ``options`` declares what the sink reads from ``EventSinkConfig.options`` (see :class:`PluginOption`).
    """

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any]
    summary: str = ""
    validate: Callable[[Any], None] | None = None
    options: tuple[PluginOption, ...] = ()


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
