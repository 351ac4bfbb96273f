"""Notification adapter and event sink settings of ``quarry run`` and ``quarry adapter drain`` (CONTRACT_CLI
validation steps 14 and 15, CONTRACT_INTEGRATION §1, §4, §6.4).

Inputs are the resolved configuration (``adapter.*`` and ``events.*`` after command line > ``QUARRY_*``
environment > config file > default) plus the ``--event-sink*`` flags, which address list items and so are read
here. Plugin-specific settings come from the plugin's own option schema (``NotificationAdapterPlugin.options``,
``EventSinkPlugin.options``, each a :class:`~quarry_core.registrations.PluginOption`): a third-party adapter gets
``--adapter-option name=value``, ``QUARRY_ADAPTER_OPTION=name=value`` and ``adapter.options.name`` without any
change to Quarry, with values converted to the declared kind and unknown names rejected (exit 4).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from loguru import logger

from quarry_core.errors import ConfigError, PluginError
from quarry_core.interfaces import AdapterConfig, EventSinkConfig
from quarry_core.notify import DEFAULT_RETRIES, DEFAULT_TIMEOUT, check_adapter_config
from quarry_core.registrations import PluginOption
from quarry_core.runtime.notifications import DEFAULT_MAX_AGE, NotificationSettings
from quarry_core.units import parse_bool, parse_duration

__all__ = [
    "ADAPTER_FLAG_OPTIONS",
    "EVENT_SINK_FLAGS",
    "EventSinkSettings",
    "adapter_settings",
    "coerce_options",
    "event_sink_settings",
]

#: Named ``--adapter-*`` flags (config keys ``adapter.<name>``) that are options of particular adapters.
ADAPTER_FLAG_OPTIONS = ("channel", "subject", "region", "endpoint")

#: ``--event-sink-<sink>-<field>`` flags: parameter name → (sink type, field). ``url`` and ``delivery`` are fields
#: of ``EventSinkConfig``; the rest are options of the sink.
EVENT_SINK_FLAGS: Mapping[str, tuple[str, str]] = {
    "event_sink_lode_delivery": ("lode", "delivery"),
    "event_sink_redis_url": ("redis", "url"),
    "event_sink_redis_stream_key": ("redis", "stream_key"),
    "event_sink_redis_max_len": ("redis", "max_len"),
    "event_sink_redis_ttl": ("redis", "ttl"),
    "event_sink_redis_timeout": ("redis", "timeout"),
    "event_sink_redis_retries": ("redis", "retries"),
    "event_sink_redis_delivery": ("redis", "delivery"),
}

_DELIVERIES = ("mandatory", "best_effort")
_SINK_FIELDS = frozenset({"type", "delivery", "url", "options"})
_ADAPTER_PREFIX = "invalid adapter config"
_SINK_PREFIX = "invalid event sink config"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# --------------------------------------------------------------------------------------------- option schemas


def _coerce(option: PluginOption, value: Any, where: str) -> Any:
    """``value`` (text from the command line or environment, or a typed config value) as ``option.kind``."""
    kind = option.kind
    try:
        if kind == "string":
            if isinstance(value, (dict, list)):
                raise ValueError(f"expected text, got {type(value).__name__}")
            return str(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            return parse_bool(str(value))
        if kind == "integer":
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            if isinstance(value, int):
                return value
            text = str(value).strip()
            if not text.lstrip("-").isdigit():
                raise ValueError(f"expected an integer, got {text!r}")
            return int(text)
        if kind == "number":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
            return number
        # duration: seconds; -1 is kept (it means "disabled" for some options)
        if isinstance(value, bool):
            raise ValueError("expected a duration")
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip()
        if text == "-1":
            return -1.0
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def coerce_options(
    declared: Sequence[PluginOption], given: Mapping[str, Any], *, what: str, prefix: str
) -> dict[str, Any]:
    """Check ``given`` options against the plugin's declared ``options`` and convert them to their kinds.

    A plugin that declares no options gets ``given`` unchanged (text stays text). Raises
    ``ConfigError("<prefix>: <what>: unknown option "x" (known: a, b)")`` for an undeclared name.
    """
    if not declared:
        return dict(given)
    by_name = {o.name: o for o in declared}
    out: dict[str, Any] = {}
    for key, value in given.items():
        option = by_name.get(str(key))
        if option is None:
            known = ", ".join(sorted(by_name))
            raise ConfigError(f'{prefix}: {what}: unknown option "{key}" (known: {known})')
        out[option.name] = _coerce(option, value, f"{prefix}: {what} option {option.name}")
    return out


# --------------------------------------------------------------------------------------------- adapter (step 14)


def adapter_settings(cfg: Any, host: Any) -> NotificationSettings | None:
    """The run's notification settings from ``adapter.*`` (``cfg`` is a :class:`~quarry_core.config.ConfigView`),
    checked in contract order; ``None`` when no adapter is configured.

    Raises ``ConfigError("invalid adapter config: …")`` (exit 4): unknown type, URL missing, timeout ≤ 0, retries
    < 0, an option the adapter does not declare, or whatever the plugin's ``validate`` rejects. Flags that the
    chosen adapter ignores (``--adapter-header`` for redis, ``--adapter-channel`` for webhook) warn.
    """
    table: Mapping[str, Any] = cfg.get("adapter") or {}
    kind = table.get("type")
    if not kind:
        given = sorted(k for k, v in table.items() if v not in (None, {}, False) and k not in ("max_age",))
        if given:
            raise ConfigError(
                f"{_ADAPTER_PREFIX}: adapter.{given[0]} is set but no adapter is selected; "
                "add --adapter NAME (adapter.type)"
            )
        return None
    kind = str(kind)
    try:
        provided = host.notification_adapter(kind)
    except PluginError as exc:
        raise ConfigError(f"{_ADAPTER_PREFIX}: {exc}") from None
    record = provided.record
    declared: tuple[PluginOption, ...] = tuple(getattr(record, "options", ()) or ())
    declared_names = {o.name for o in declared}
    options: dict[str, Any] = {}
    for name in ADAPTER_FLAG_OPTIONS:
        value = table.get(name)
        if value is None:
            continue
        if declared and name not in declared_names:
            logger.warning("Warning: --adapter-{} is ignored for the {} adapter", name, kind)
            continue
        options[name] = value
    options.update(dict(table.get("options") or {}))
    options = coerce_options(declared, options, what=kind, prefix=_ADAPTER_PREFIX)
    headers = {str(k): str(v) for k, v in dict(table.get("headers") or {}).items()}
    if headers and not getattr(record, "uses_headers", False):
        logger.warning("Warning: --adapter-header is ignored for the {} adapter", kind)
        headers = {}
    timeout = table.get("timeout")
    retries = table.get("retries")
    config = AdapterConfig(
        type=kind,
        url=str(table.get("url") or ""),
        headers=headers,
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
        retries=retries if retries is not None else DEFAULT_RETRIES,
        options=options,
    )
    check_adapter_config(config)
    if record.validate is not None:
        try:
            record.validate(config)
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith(_ADAPTER_PREFIX) else f"{_ADAPTER_PREFIX}: {text}") from None
    max_age = table.get("max_age")
    if max_age is not None and float(max_age) <= 0:
        raise ConfigError(f"{_ADAPTER_PREFIX}: adapter.max_age must be > 0")
    return NotificationSettings(
        adapter=config,
        outbox=bool(table.get("outbox", False)),
        notify_children=bool(table.get("notify_children", False)),
        drain_on_run=bool(table.get("drain_on_run", False)),
        max_age=float(max_age) if max_age is not None else DEFAULT_MAX_AGE,
    )


# --------------------------------------------------------------------------------------------- event sinks (step 15)


@attrs.frozen
class EventSinkSettings:
    """The run's event sinks besides Lode, whether Lode stores events, and Lode's delivery."""

    sinks: tuple[EventSinkConfig, ...] = ()
    lode_events: bool = True
    lode_delivery: str = "mandatory"


def _env_list(name: str, environ: Mapping[str, str]) -> list[str] | None:
    text = environ.get(name)
    if not text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _sink_flag_values(params: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``--event-sink*`` values given on the command line, else from ``QUARRY_EVENT_SINK*``."""
    out: dict[str, Any] = {}
    for name in (*EVENT_SINK_FLAGS, "event_sink", "event_sink_option"):
        value = params.get(name)
        if value in (None, [], ()):
            env_name = "QUARRY_" + name.upper()
            value = (
                _env_list(env_name, environ)
                if name in ("event_sink", "event_sink_option")
                else environ.get(env_name) or None
            )
        if value not in (None, [], ()):
            out[name] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def event_sink_settings(
    cfg: Any, params: Mapping[str, Any], host: Any, environ: Mapping[str, str] | None = None
) -> EventSinkSettings:
    """The event sinks of a run from ``events.*`` and the ``--event-sink*`` flags (``params``, by parameter name).

    ``--event-sink`` (repeatable, or ``QUARRY_EVENT_SINK=a,b``) replaces the config file's ``events.sinks``; the
    per-sink flags then fill in the named sink. Raises ``ConfigError("invalid event sink config: …")``: unknown
    types, duplicates (``lode`` included), a bad delivery, a flag for a sink that is not listed, options the sink
    does not declare, what the plugin's ``validate`` rejects, and ``--no-lode-events`` without another
    ``mandatory`` sink.
    """
    env = os.environ if environ is None else environ
    flags = _sink_flag_values(params, env)
    items: list[dict[str, Any]]
    if "event_sink" in flags:
        items = [{"type": name} for name in flags["event_sink"]]
    else:
        items = [dict(item) for item in (cfg.get("events.sinks") or [])]
    by_type: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(items):
        kind = item.get("type")
        if not kind:
            raise ConfigError(f"{_SINK_PREFIX}: events.sinks[{index}] has no type")
        if kind in by_type:
            raise ConfigError(f'{_SINK_PREFIX}: duplicate event sink "{kind}" (list each sink once)')
        by_type[str(kind)] = item
    for name, (kind, field) in EVENT_SINK_FLAGS.items():
        if name not in flags:
            continue
        target_item = by_type.get(kind)
        if target_item is None:
            raise ConfigError(f"{_SINK_PREFIX}: {_flag(name)} needs --event-sink {kind}")
        target_item[field] = flags[name]
    for text in flags.get("event_sink_option", []):
        target, sep, value = str(text).partition("=")
        kind, dot, key = target.partition(".")
        if not sep or not dot or not kind or not key:
            raise ConfigError(f'{_SINK_PREFIX}: invalid --event-sink-option "{text}": expected SINK.KEY=VALUE')
        option_item = by_type.get(kind)
        if option_item is None:
            raise ConfigError(f"{_SINK_PREFIX}: --event-sink-option {target} needs --event-sink {kind}")
        option_item["options"] = {**dict(option_item.get("options") or {}), key: value}
    sinks: list[EventSinkConfig] = []
    lode_delivery = "mandatory"
    for kind, item in by_type.items():
        delivery = str(item.get("delivery") or "mandatory")
        if delivery not in _DELIVERIES:
            raise ConfigError(f'{_SINK_PREFIX}: {kind} delivery must be "mandatory" or "best_effort", got {delivery!r}')
        if kind == "lode":
            extra = sorted(k for k in item if k not in ("type", "delivery"))
            if extra:
                raise ConfigError(f'{_SINK_PREFIX}: the lode sink only takes "delivery", got {extra[0]!r}')
            lode_delivery = delivery
            continue
        try:
            record = host.event_sink(kind).record
        except PluginError as exc:
            raise ConfigError(f"{_SINK_PREFIX}: {exc}") from None
        options = {k: v for k, v in item.items() if k not in _SINK_FIELDS and v is not None}
        options.update(dict(item.get("options") or {}))
        declared: tuple[PluginOption, ...] = tuple(getattr(record, "options", ()) or ())
        options = coerce_options(declared, options, what=kind, prefix=_SINK_PREFIX)
        url = item.get("url")
        config = EventSinkConfig(type=kind, delivery=delivery, url=str(url) if url else None, options=options)
        if record.validate is not None:
            try:
                record.validate(config)
            except ConfigError as exc:
                text = str(exc)
                raise ConfigError(text if text.startswith(_SINK_PREFIX) else f"{_SINK_PREFIX}: {text}") from None
        sinks.append(config)
    lode_events = cfg.get("events.lode_events")
    lode_events = True if lode_events is None else bool(lode_events)
    if not lode_events:
        if not any(s.delivery == "mandatory" for s in sinks):
            raise ConfigError("--no-lode-events requires at least one mandatory event sink")
        logger.warning(
            "Warning: events will not be written to Lode; only artifact commit records, chunks, sidecar files, "
            "metrics and run records are stored"
        )
    elif lode_delivery == "best_effort":
        logger.warning(
            "Warning: Lode event writes are best_effort: a failed write is counted and the run goes on without "
            "those events in Lode"
        )
    return EventSinkSettings(sinks=tuple(sinks), lode_events=lode_events, lode_delivery=lode_delivery)
