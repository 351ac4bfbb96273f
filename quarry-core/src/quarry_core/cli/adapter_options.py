"""Notification adapter and event sink settings of ``quarry run`` and ``quarry adapter drain`` (CONTRACT_CLI
validation steps 14 and 15, CONTRACT_INTEGRATION §1, §4, §6.4).

Inputs are the resolved configuration (``adapter.*`` and ``events.*`` after command line > ``QUARRY_*``
environment > config file > default) plus the ``--event-sink*`` flags, which address list items and so are read
here. Several adapters per run: ``--adapter`` is repeatable and ``[[adapters]]`` gives each its own settings
(:func:`adapter_settings`). Plugin-specific settings come from the plugin's own option schema
(``NotificationAdapterPlugin.options``, ``EventSinkPlugin.options``, each a
:class:`~quarry_core.registrations.PluginOption`): a third-party adapter gets ``--adapter-option name=value``,
``QUARRY_ADAPTER_OPTION=name=value`` and ``adapter.options.name`` without any change to Quarry, with values
converted to the declared kind and unknown names rejected (exit 4).
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
from quarry_core.runtime.notifications import DEFAULT_MAX_AGE, AdapterTarget, NotificationSettings
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

#: ``adapter.*`` keys that belong to one adapter (the rest, ``outbox``, ``notify_children``, ``drain_on_run`` and
#: ``max_age``, are shared by every adapter of the run).
_PER_ADAPTER = ("url", "headers", "timeout", "retries", *ADAPTER_FLAG_OPTIONS, "options")
#: ``adapter.*`` keys that are defaults for every adapter of a run with several (a per-adapter value wins).
_SHARED_DEFAULTS = ("timeout", "retries")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _selected_names(table: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The adapters of the run: ``adapter.type`` (``--adapter``, repeatable; ``QUARRY_ADAPTER=a,b``; a name in the
    config file), else every ``[[adapters]]`` entry in order."""
    selected = table.get("type")
    if selected:
        names = [selected] if isinstance(selected, str) else [str(n) for n in selected]
    else:
        names = [str(e.get("name") or e.get("type") or "") for e in entries]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ConfigError(f"{_ADAPTER_PREFIX}: an empty adapter name was selected")
        if name in seen:
            raise ConfigError(f'{_ADAPTER_PREFIX}: adapter "{name}" is selected twice (name each adapter once)')
        seen.add(name)
    return names


def _entries_by_name(entries: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        kind = entry.get("type")
        if not kind:
            raise ConfigError(f"{_ADAPTER_PREFIX}: adapters[{index}] has no type")
        name = str(entry.get("name") or kind)
        if not set(name) <= _NAME_CHARS:
            raise ConfigError(
                f'{_ADAPTER_PREFIX}: adapters[{index}] name "{name}" may only hold letters, digits, "_" and "-"'
            )
        if name in out:
            raise ConfigError(
                f'{_ADAPTER_PREFIX}: two [[adapters]] entries are named "{name}"; '
                'give each a distinct name (name = "…")'
            )
        out[name] = dict(entry)
    return out


def _addressed_options(options: Mapping[str, Any], names: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``adapter.options`` into bare keys and ``NAME.KEY`` keys addressed to a selected adapter
    (``--adapter-option webhook.url=…``): ``(bare, {name: {key: value}})``."""
    bare: dict[str, Any] = {}
    addressed: dict[str, Any] = {}
    for key, value in options.items():
        prefix, dot, rest = str(key).partition(".")
        if dot and rest and prefix in names:
            addressed.setdefault(prefix, {})[rest] = value
        else:
            bare[str(key)] = value
    return bare, addressed


def _apply_addressed(item: dict[str, Any], given: Mapping[str, Any], name: str) -> None:
    """``--adapter-option NAME.KEY=V`` into the adapter's settings: ``url``, ``timeout``, ``retries``,
    ``header.<H>``, the named options (``channel``, ``subject``, …) or any option the plugin declares."""
    for key, value in given.items():
        where = f"{_ADAPTER_PREFIX}: --adapter-option {name}.{key}"
        if key == "url":
            item["url"] = str(value)
        elif key == "timeout":
            item["timeout"] = _coerce(PluginOption("timeout", "duration"), value, where)
        elif key == "retries":
            item["retries"] = _coerce(PluginOption("retries", "integer"), value, where)
        elif key.startswith("header."):
            header = key.removeprefix("header.")
            if not header:
                raise ConfigError(f"{where}: expected {name}.header.NAME=VALUE")
            item["headers"] = {**dict(item.get("headers") or {}), header: str(value)}
        elif key in ADAPTER_FLAG_OPTIONS:
            item[key] = value
        else:
            item["options"] = {**dict(item.get("options") or {}), key: value}


def _flat_keys(table: Mapping[str, Any], bare_options: Mapping[str, Any]) -> list[str]:
    keys = [k for k in _PER_ADAPTER if k != "options" and table.get(k) not in (None, {})]
    if bare_options:
        keys.append("options")
    return keys


def _adapter_config(
    name: str, item: Mapping[str, Any], host: Any, configured: Sequence[str], *, several: bool
) -> AdapterConfig:
    """One adapter's checked :class:`AdapterConfig` from its merged settings ``item``; errors name the adapter
    when the run has ``several`` or it is renamed."""
    kind = str(item.get("type") or name)
    try:
        provided = host.notification_adapter(kind)
    except PluginError as exc:
        hint = f"; configured [[adapters]] names: {', '.join(configured)}" if configured else ""
        raise ConfigError(f"{_ADAPTER_PREFIX}: {exc}{hint}") from None
    record = provided.record
    label = kind if name == kind else f"{name} ({kind})"
    declared: tuple[PluginOption, ...] = tuple(getattr(record, "options", ()) or ())
    declared_names = {o.name for o in declared}
    options: dict[str, Any] = {}
    for option in ADAPTER_FLAG_OPTIONS:
        value = item.get(option)
        if value is None:
            continue
        if declared and option not in declared_names:
            logger.warning("Warning: --adapter-{} is ignored for the {} adapter", option, label)
            continue
        options[option] = value
    options.update(dict(item.get("options") or {}))
    options = coerce_options(declared, options, what=label, prefix=_ADAPTER_PREFIX)
    headers = {str(k): str(v) for k, v in dict(item.get("headers") or {}).items()}
    if headers and not getattr(record, "uses_headers", False):
        logger.warning("Warning: --adapter-header is ignored for the {} adapter", label)
        headers = {}
    timeout = item.get("timeout")
    retries = item.get("retries")
    config = AdapterConfig(
        type=kind,
        url=str(item.get("url") or ""),
        headers=headers,
        timeout=float(timeout) if timeout is not None else DEFAULT_TIMEOUT,
        retries=retries if retries is not None else DEFAULT_RETRIES,
        options=options,
    )
    try:
        check_adapter_config(config)
        if record.validate is not None:
            record.validate(config)
    except ConfigError as exc:
        text = str(exc).removeprefix(f"{_ADAPTER_PREFIX}: ")
        where = f"{name}: " if several or name != kind else ""
        raise ConfigError(f"{_ADAPTER_PREFIX}: {where}{text}") from None
    return config


def adapter_settings(cfg: Any, host: Any) -> NotificationSettings | None:
    """The run's notification settings from ``adapter.*`` and ``[[adapters]]`` (``cfg`` is a
    :class:`~quarry_core.config.ConfigView`), checked in contract order; ``None`` when no adapter is configured.

    Selection: ``adapter.type`` (``--adapter NAME``, repeatable; ``QUARRY_ADAPTER=a,b``) names the adapters,
    else every ``[[adapters]]`` entry is used. A name is an ``[[adapters]]`` entry's ``name`` (default: its
    ``type``) or, without an entry, an adapter type. Per-adapter settings, most specific first:
    ``--adapter-option NAME.KEY=V`` (``url``, ``timeout``, ``retries``, ``header.H``, ``channel``, …, or a plugin
    option), then the ``adapter.*`` flags and keys when exactly one adapter is selected (backward compatible), then
    the ``[[adapters]]`` entry. With several adapters ``adapter.timeout``/``adapter.retries`` are defaults for each,
    and the other ``adapter.*`` per-adapter keys (URL, headers, named and bare options) are exit 4: they would be
    ambiguous. ``outbox``, ``notify_children``, ``drain_on_run`` and ``max_age`` apply to every adapter.

    Raises ``ConfigError("invalid adapter config: …")`` (exit 4): unknown type, a name selected twice, URL missing,
    timeout ≤ 0, retries < 0, an option the adapter does not declare, or whatever the plugin's ``validate``
    rejects. Flags that the chosen adapter ignores (``--adapter-header`` for redis, ``--adapter-channel`` for
    webhook) warn.
    """
    table: Mapping[str, Any] = cfg.get("adapter") or {}
    entries: list[Mapping[str, Any]] = list(cfg.get("adapters") or [])
    by_name = _entries_by_name(entries)
    names = _selected_names(table, entries)
    if not names:
        given = sorted(k for k, v in table.items() if v not in (None, {}, False) and k not in ("max_age",))
        if given:
            raise ConfigError(
                f"{_ADAPTER_PREFIX}: adapter.{given[0]} is set but no adapter is selected; "
                "add --adapter NAME (adapter.type)"
            )
        return None
    bare, addressed = _addressed_options(dict(table.get("options") or {}), names)
    flat = _flat_keys(table, bare)
    if len(names) > 1:
        ambiguous = [k for k in flat if k not in _SHARED_DEFAULTS]
        if ambiguous:
            key = ambiguous[0]
            flag = "--adapter-option K=V" if key == "options" else "--adapter-" + key.removesuffix("s")
            raise ConfigError(
                f"{_ADAPTER_PREFIX}: {flag} (adapter.{key}) applies to one adapter, but {len(names)} are selected "
                f"({', '.join(names)}); set it per adapter: --adapter-option {names[0]}."
                f"{'header.NAME' if key == 'headers' else 'KEY' if key == 'options' else key}=VALUE "
                "or an [[adapters]] entry in the config file"
            )
    targets: list[AdapterTarget] = []
    for name in names:
        item: dict[str, Any] = dict(by_name.get(name) or {"type": name})
        if len(names) == 1:
            for key in flat:
                if key == "headers":
                    item["headers"] = {**dict(item.get("headers") or {}), **dict(table["headers"])}
                elif key == "options":
                    item["options"] = {**dict(item.get("options") or {}), **bare}
                else:
                    item[key] = table[key]
        else:
            for key in _SHARED_DEFAULTS:
                if item.get(key) is None and table.get(key) is not None:
                    item[key] = table[key]
        _apply_addressed(item, addressed.get(name, {}), name)
        config = _adapter_config(name, item, host, list(by_name), several=len(names) > 1)
        targets.append(AdapterTarget(name, config))
    max_age = table.get("max_age")
    if max_age is not None and float(max_age) <= 0:
        raise ConfigError(f"{_ADAPTER_PREFIX}: adapter.max_age must be > 0")
    return NotificationSettings(
        targets=tuple(targets),
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
