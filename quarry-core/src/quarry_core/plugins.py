"""The plugin host: the only place that talks to pluggy (STYLE habits 4-7).

``PluginHost.build()`` adds the hookspecs, honours the operator's block and allow lists, loads every ``quarry``
entry point one by one (a failure becomes a :class:`PluginLoadRecord`, never a crash, unless strict mode is on)
and exposes typed lookups by kind and name.

Environment:

- ``QUARRY_DISABLE_PLUGINS=a,b``: entry-point or distribution names to skip.
- ``QUARRY_LOAD_PLUGINS=dist1,dist2``: allow-list of distributions (set but empty = none).
- ``QUARRY_STRICT_PLUGINS=1``: re-raise load errors.
- ``QUARRY_TRACE_PLUGINS=1``: log every hook call.
"""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import attrs
import pluggy
from loguru import logger

from quarry_core import hookspecs
from quarry_core.errors import PluginConflictError, PluginLoadError, UnknownPluginError
from quarry_core.registrations import (
    KINDS,
    CliCommandPlugin,
    EventSinkPlugin,
    ExecutorPlugin,
    IngestionPolicyPlugin,
    NotificationAdapterPlugin,
    ProxySelectorPlugin,
    ProxyStateStorePlugin,
    StorageBackendPlugin,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY_PROVIDERS",
    "LoadedPlugin",
    "PluginHost",
    "PluginLoadRecord",
    "Provided",
]

ENTRY_POINT_GROUP = "quarry"
T = TypeVar("T")

#: (kind, name) -> distribution, for "install X" hints when a first-party implementation is missing.
FIRST_PARTY_PROVIDERS: dict[tuple[str, str], str] = {
    ("ingestion_policy", "strict"): "quarry-policy-strict",
    ("ingestion_policy", "buffered"): "quarry-policy-buffered",
    ("ingestion_policy", "streaming"): "quarry-policy-buffered",
    ("storage_backend", "lode"): "quarry-lode",
    ("storage_backend", "fs"): "quarry-lode",
    ("storage_backend", "s3"): "quarry-lode",
    ("event_sink", "lode"): "quarry-lode",
    ("event_sink", "redis"): "quarry-adapter-redis",
    ("notification_adapter", "webhook"): "quarry-adapter-webhook",
    ("notification_adapter", "redis"): "quarry-adapter-redis",
    ("notification_adapter", "nats"): "quarry-adapter-nats",
    ("executor", "playwright"): "quarry-executor",
    ("cli_command", "temporal"): "quarry-temporal",
}

_KIND_LABELS = {
    "ingestion_policy": "ingestion policy",
    "storage_backend": "storage backend",
    "notification_adapter": "adapter",
    "event_sink": "event sink",
    "proxy_selector": "proxy strategy",
    "proxy_state_store": "proxy state store",
    "executor": "executor",
    "cli_command": "command",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [x.strip() for x in raw.split(",") if x.strip()]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@attrs.frozen
class LoadedPlugin:
    """One registered plugin module: its entry-point name, distribution and the hooks it implements."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


@attrs.frozen
class PluginLoadRecord:
    """A plugin that failed to load or register, kept as data."""

    entry_point: str
    distribution: str
    version: str
    error: str


@attrs.frozen
class Provided(Generic[T]):
    """A registration record plus the distribution that provided it."""

    record: T
    distribution: str
    version: str

    @property
    def name(self) -> str:
        return str(getattr(self.record, "name"))  # noqa: B009 - records share only this attribute


class PluginHost:
    """A fresh pluggy manager plus typed lookups. Build one per process (CLI) or per test."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._dist_of: dict[str, tuple[str, str]] = {}
        self.loaded: list[LoadedPlugin] = []
        self.load_errors: list[PluginLoadRecord] = []
        self._cache: dict[str, tuple[dict[str, list[Provided[Any]]], dict[str, str]]] = {}
        self._warned_conflicts: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        *,
        load_entrypoints: bool = True,
        strict: bool | None = None,
        disable: Iterable[str] | None = None,
        allow: Iterable[str] | None = None,
        trace: bool | None = None,
    ) -> PluginHost:
        """Create a host: specs, block list, entry points one by one, ``check_pending()``."""
        host = cls()
        strict = _truthy(os.environ.get("QUARRY_STRICT_PLUGINS")) if strict is None else strict
        blocked = set(disable if disable is not None else (_env_list("QUARRY_DISABLE_PLUGINS") or []))
        allowed_list = list(allow) if allow is not None else _env_list("QUARRY_LOAD_PLUGINS")
        allowed = {_normalise(a) for a in allowed_list} if allowed_list is not None else None
        for name in blocked:
            host._pm.set_blocked(name)
        from quarry_core import __version__, builtins

        host.register(builtins, name="core", distribution="quarry-core", version=__version__)
        if load_entrypoints:
            host._load_entrypoints(strict=strict, blocked=blocked, allowed=allowed)
        host._pm.check_pending()
        if trace if trace is not None else _truthy(os.environ.get("QUARRY_TRACE_PLUGINS")):
            host._pm.trace.root.setwriter(lambda msg: logger.debug("plugin trace: {}", msg.rstrip()))
            host._pm.enable_tracing()
        return host

    def _load_entrypoints(self, *, strict: bool, blocked: set[str], allowed: set[str] | None) -> None:
        seen: set[tuple[str, str]] = set()
        for dist in md.distributions():
            # entry_points.txt first: METADATA (an email-header parse, ~0.2 ms a distribution) is read only for
            # the few distributions that have a Quarry entry point
            eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
            if not eps:
                continue
            dist_name = dist.metadata["Name"] or "unknown"
            norm = _normalise(dist_name)
            for ep in eps:
                key = (norm, ep.name)
                if key in seen:  # the same .dist-info seen twice (lib64 -> lib symlinks)
                    continue
                seen.add(key)
                if ep.name in blocked or dist_name in blocked or norm in blocked:
                    continue
                if allowed is not None and norm not in allowed:
                    continue
                version = dist.version or ""
                try:
                    module = ep.load()
                    self.register(module, name=ep.name, distribution=dist_name, version=version)
                except Exception as exc:
                    err = PluginLoadError(ep.name, dist_name, version, exc)
                    if strict:
                        raise err from exc
                    self.load_errors.append(
                        PluginLoadRecord(ep.name, dist_name, version, f"{type(exc).__name__}: {exc}")
                    )
                    logger.warning("Warning: {}", err)

    def register(self, plugin: object, *, name: str, distribution: str = "(local)", version: str = "") -> None:
        """Register a module or object implementing hooks (what entry-point loading does, usable in tests)."""
        if self._pm.is_blocked(name) or self._pm.has_plugin(name):
            return
        self._pm.register(plugin, name=name)
        self._dist_of[name] = (distribution, version)
        hooks = tuple(sorted(h.name for h in self._pm.get_hookcallers(plugin) or []))
        self.loaded.append(LoadedPlugin(name, distribution, version, hooks))
        self._cache.clear()

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self._dist_of.pop(name, None)
        self.loaded = [p for p in self.loaded if p.name != name]
        self._cache.clear()

    # ------------------------------------------------------------------ registrations

    def _collect(self, kind: str) -> tuple[dict[str, list[Provided[Any]]], dict[str, str]]:
        if kind in self._cache:
            return self._cache[kind]
        hook_name, record_type = KINDS[kind]
        caller = getattr(self._pm.hook, hook_name)
        by_name: dict[str, list[Provided[Any]]] = {}
        aliases: dict[str, str] = {}
        for impl in caller.get_hookimpls():  # registration order
            dist, version = self._dist_of.get(impl.plugin_name, ("(local)", ""))
            try:
                records = list(impl.function() or ())
                for rec in records:
                    if not isinstance(rec, record_type):
                        raise TypeError(f"{hook_name} yielded {type(rec).__name__}, expected {record_type.__name__}")
            except Exception as exc:
                err = PluginLoadError(impl.plugin_name, dist, version, exc)
                if _truthy(os.environ.get("QUARRY_STRICT_PLUGINS")):
                    raise err from exc
                self.load_errors.append(
                    PluginLoadRecord(impl.plugin_name, dist, version, f"{type(exc).__name__}: {exc}")
                )
                logger.warning("Warning: {}", err)
                continue
            for rec in records:
                by_name.setdefault(rec.name, []).append(Provided(rec, dist, version))
                for alias in getattr(rec, "aliases", ()):
                    aliases.setdefault(alias, rec.name)
        for name, providers in by_name.items():
            if len(providers) > 1 and (kind, name) not in self._warned_conflicts:
                self._warned_conflicts.add((kind, name))
                dists = ", ".join(p.distribution for p in providers)
                logger.warning(
                    'Warning: {} "{}" is registered by more than one distribution: {}', _KIND_LABELS[kind], name, dists
                )
        self._cache[kind] = (by_name, aliases)
        return by_name, aliases

    def available(self, kind: str) -> dict[str, str]:
        """name -> distribution for one kind (the first provider when names clash)."""
        by_name, _ = self._collect(kind)
        return {n: ps[0].distribution for n, ps in by_name.items()}

    def records(self, kind: str) -> list[Provided[Any]]:
        """Every record of one kind, sorted by name (duplicates included)."""
        by_name, _ = self._collect(kind)
        return [p for n in sorted(by_name) for p in by_name[n]]

    def get(self, kind: str, name: str) -> Provided[Any]:
        """Select an implementation by configured name (aliases included).

        Raises :class:`UnknownPluginError` listing what is available (with an install hint for first-party
        names), or :class:`PluginConflictError` naming both distributions.
        """
        by_name, aliases = self._collect(kind)
        real = name if name in by_name else aliases.get(name, name)
        providers = by_name.get(real)
        if not providers:
            hint = None
            dist = FIRST_PARTY_PROVIDERS.get((kind, name))
            if dist:
                hint = f'{_KIND_LABELS[kind]} "{name}" is provided by {dist}: pip install {dist}'
            raise UnknownPluginError(_KIND_LABELS[kind], name, self.available(kind), hint)
        if len(providers) > 1:
            raise PluginConflictError(_KIND_LABELS[kind], real, [p.distribution for p in providers])
        return providers[0]

    # typed façade -------------------------------------------------------------------------------

    def ingestion_policy(self, name: str) -> Provided[IngestionPolicyPlugin]:
        return self.get("ingestion_policy", name)

    def storage_backend(self, name: str) -> Provided[StorageBackendPlugin]:
        return self.get("storage_backend", name)

    def notification_adapter(self, name: str) -> Provided[NotificationAdapterPlugin]:
        return self.get("notification_adapter", name)

    def event_sink(self, name: str) -> Provided[EventSinkPlugin]:
        return self.get("event_sink", name)

    def proxy_selector(self, name: str) -> Provided[ProxySelectorPlugin]:
        return self.get("proxy_selector", name)

    def proxy_state_store(self, name: str) -> Provided[ProxyStateStorePlugin]:
        return self.get("proxy_state_store", name)

    def executor(self, name: str) -> Provided[ExecutorPlugin]:
        return self.get("executor", name)

    def cli_commands(self) -> list[Provided[CliCommandPlugin]]:
        return self.records("cli_command")

    # ------------------------------------------------------------------ observer hooks

    async def notify_run_started(self, run: Any) -> None:
        await self._observe("quarry_run_started", run=run)

    async def notify_run_finished(self, run: Any, result: Any) -> None:
        await self._observe("quarry_run_finished", run=run, result=result)

    async def _observe(self, hook_name: str, **kwargs: Any) -> None:
        caller = getattr(self._pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            fn: Callable[..., Any] = impl.function
            args = {k: v for k, v in kwargs.items() if k in impl.argnames}
            try:
                result = fn(**args)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, timeout=5.0)
            except Exception as exc:
                logger.warning(
                    "Warning: plugin {} hook {} failed: {}",
                    impl.plugin_name,
                    hook_name,
                    f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                )


def describe_records(host: PluginHost, kind: str | None = None) -> list[Mapping[str, str]]:
    """Rows for ``quarry plugins``: kind, name, distribution, version, summary."""
    rows: list[Mapping[str, str]] = []
    for k in KINDS if kind is None else [kind]:
        for p in host.records(k):
            rows.append(
                {
                    "kind": k,
                    "name": p.name,
                    "distribution": p.distribution,
                    "version": p.version,
                    "summary": getattr(p.record, "summary", ""),
                }
            )
    return rows
