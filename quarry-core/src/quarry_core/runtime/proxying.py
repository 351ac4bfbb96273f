"""A run's proxy (CONTRACT_PROXY §2-§8): pools and state store from the merged configuration, the selection at
run start and the answers to ``rotate_proxy`` events.

``resolve_proxy`` is validation step 18 of ``quarry run`` (hard errors raise :class:`ConfigError`, exit 4);
``RunProxy.start`` is the selection of step 20 (``proxy selection failed: <error>``, also exit 4). During the
run ``RunProxy.on_rotate`` answers every ``rotate_proxy`` event with one ``proxy_update`` frame. Everything a
``RunProxy`` reports outward is redacted; only ``proxy_update`` frames and the run request carry the password.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import attrs
from loguru import logger

from quarry_core.config import ConfigView
from quarry_core.errors import ConfigError, UnknownPluginError
from quarry_core.protocol.frames import Event, ProxyUpdate
from quarry_core.proxy.errors import ProxyError
from quarry_core.proxy.keys import select_request_for_job
from quarry_core.proxy.model import (
    JobProxyRequest,
    ProxyPool,
    RedactedProxy,
    Rotation,
    Selection,
    SelectRequest,
    redact_proxy_endpoint,
)
from quarry_core.proxy.selector import ProxySelector
from quarry_core.proxy.stores import DEFAULT_KEY_PREFIX, ProxyStateStore, StateStoreConfig
from quarry_core.proxy.validation import (
    check_proxy_sources,
    load_pools,
    parse_legacy_proxy_config,
    selection_input_warnings,
    validate_run_proxy,
    validate_state_store_config,
)

__all__ = [
    "DEFAULT_MAX_ROTATIONS",
    "ProxySettings",
    "RunProxy",
    "close_selector",
    "load_proxy_config",
    "open_selector",
    "report_fields",
    "resolve_proxy",
]

#: ``proxy.max_rotations_per_run`` default.
DEFAULT_MAX_ROTATIONS = 100


def _store_repr(store: StateStoreConfig) -> str:
    from quarry_core.proxy.redis_store import redact_url

    return repr(attrs.evolve(store, url=redact_url(store.url)) if store.url else store)


@attrs.frozen
class ProxySettings:
    """The proxy part of a run's settings: every pool, the state store, the run's request (pool, strategy
    override, sticky key) and its rotation limit.

    ``domain``/``origin`` are the ``--proxy-domain``/``--proxy-origin`` values as given; without them each run
    derives both from its job's ``url`` (so fan-out children derive their own).
    """

    pools: Mapping[str, ProxyPool] = attrs.field(repr=lambda pools: repr(sorted(pools)))
    request: JobProxyRequest
    store: StateStoreConfig = attrs.field(factory=StateStoreConfig, repr=lambda store: _store_repr(store))
    domain: str | None = None
    origin: str | None = None
    max_rotations: int = DEFAULT_MAX_ROTATIONS

    def select_request(
        self, job: Mapping[str, Any] | None, job_id: str | None, *, commit: bool = True
    ) -> SelectRequest:
        """The :class:`SelectRequest` for one run of ``job``."""
        return select_request_for_job(
            self.request.pool,
            job,
            job_id=job_id,
            strategy_override=self.request.strategy,
            sticky_key=self.request.sticky_key,
            domain=self.domain,
            origin=self.origin,
            commit=commit,
        )


@attrs.frozen
class _ProxyConfig:
    pools: dict[str, ProxyPool]
    store: StateStoreConfig
    warnings: tuple[str, ...]


def _store_config(view: ConfigView, host: Any) -> tuple[StateStoreConfig, list[str]]:
    store = StateStoreConfig(
        type=view.get("proxy.state_store.type") or "file",
        path=view.get("proxy.state_store.path") or None,
        url=view.get("proxy.state_store.url") or None,
        key_prefix=view.get("proxy.state_store.key_prefix") or DEFAULT_KEY_PREFIX,
    )
    try:
        host.proxy_state_store(store.type)
    except UnknownPluginError:
        valid = ", ".join(sorted(host.available("proxy_state_store"))) or "none installed"
        raise ConfigError(f'invalid --proxy-state-store "{store.type}" (valid: {valid})') from None
    return store, validate_state_store_config(store)


def load_proxy_config(view: ConfigView, host: Any, *, legacy_config: str | Path | None = None) -> _ProxyConfig:
    """Pools (config file ``proxies`` or the deprecated ``--proxy-config`` JSON file) and the state store
    settings, validated (CONTRACT_PROXY §3). Shared by ``quarry run`` and the proxy read-side commands."""
    config_pools = view.get("proxies") or None
    check_proxy_sources(legacy_config, config_pools)
    strategies: Collection[str] = tuple(host.available("proxy_selector"))
    if legacy_config is not None:
        pools, warnings = parse_legacy_proxy_config(legacy_config, strategies=strategies)
    else:
        pools, warnings = load_pools(config_pools, strategies=strategies)
    store, store_warnings = _store_config(view, host)
    return _ProxyConfig(pools=pools, store=store, warnings=(*warnings, *store_warnings))


def resolve_proxy(
    view: ConfigView,
    host: Any,
    *,
    legacy_config: str | Path | None = None,
    sticky_key: str | None = None,
    domain: str | None = None,
    origin: str | None = None,
    job: Mapping[str, Any] | None = None,
) -> ProxySettings | None:
    """Validation step 18 of ``quarry run``: the run's :class:`ProxySettings`, or ``None`` without a pool.

    ``view`` is the merged configuration (command line > environment > file): ``proxies``, ``proxy.pool``,
    ``proxy.strategy``, ``proxy.state_store.*`` and ``proxy.max_rotations_per_run``. Soft warnings go to the log
    (stderr). Raises :class:`ConfigError` naming the key path and the reason, never a password.
    """
    loaded = load_proxy_config(view, host, legacy_config=legacy_config)
    pool_name = view.get("proxy.pool") or None
    strategy = view.get("proxy.strategy") or None
    validate_run_proxy(loaded.pools, pool_name, strategy, strategies=tuple(host.available("proxy_selector")))
    max_rotations = view.get("proxy.max_rotations_per_run")
    if max_rotations is None:
        max_rotations = DEFAULT_MAX_ROTATIONS
    if isinstance(max_rotations, bool) or not isinstance(max_rotations, int) or max_rotations < 0:
        raise ConfigError("--proxy-max-rotations (proxy.max_rotations_per_run) must be an integer >= 0")
    for warning in loaded.warnings:
        logger.warning(warning)
    if pool_name is None:
        unused = [flag for flag, value in (("--proxy-strategy", strategy), ("--proxy-sticky-key", sticky_key)) if value]
        if unused:
            logger.warning("Warning: {} ignored without a proxy pool (--proxy-pool)", ", ".join(unused))
        return None
    pool = loaded.pools[pool_name]
    for warning in selection_input_warnings(
        pool, strategy=strategy, sticky_key=sticky_key, domain=domain, origin=origin, job=job
    ):
        logger.warning(warning)
    return ProxySettings(
        pools=loaded.pools,
        request=JobProxyRequest(pool=pool_name, strategy=strategy, sticky_key=sticky_key or None),
        store=loaded.store,
        domain=domain or None,
        origin=origin or None,
        max_rotations=max_rotations,
    )


def open_selector(pools: Mapping[str, ProxyPool], store_config: StateStoreConfig, host: Any) -> ProxySelector:
    """A :class:`ProxySelector` over ``pools`` with the plugin host's strategies and state store."""
    strategies = {name: host.proxy_selector(name).record.factory() for name in host.available("proxy_selector")}
    store: ProxyStateStore = host.proxy_state_store(store_config.type).record.factory(store_config)
    return ProxySelector(pools, store, strategies)


def _warn_all(warnings: Collection[str]) -> None:
    for warning in warnings:
        logger.warning(warning)


class RunProxy:
    """One run's proxy: the endpoint selected at start, the rotations since, and every endpoint used."""

    def __init__(self, settings: ProxySettings, selector: ProxySelector, selection: Selection, run_id: str) -> None:
        self.settings = settings
        self.selector = selector
        self.run_id = run_id
        self.current: Selection | Rotation = selection
        self.rotations = 0
        self.endpoints: list[RedactedProxy] = [selection.redacted]

    def __repr__(self) -> str:
        return f"RunProxy(pool={self.pool!r}, current={self.current.redacted!r}, rotations={self.rotations})"

    @classmethod
    async def start(
        cls,
        settings: ProxySettings,
        host: Any,
        *,
        run_id: str,
        job: Mapping[str, Any] | None,
        job_id: str | None,
    ) -> RunProxy:
        """Select the run's endpoint (``commit=True``) through the configured state store.

        Raises ``ConfigError("proxy selection failed: <error>")`` (exit 4 for ``quarry run``).
        """
        selector: ProxySelector | None = None
        try:
            selector = open_selector(settings.pools, settings.store, host)
            selection = await selector.select(settings.select_request(job, job_id or run_id))
        except (ProxyError, ConfigError) as exc:
            if selector is not None:
                await close_selector(selector)
            raise ConfigError(f"proxy selection failed: {exc}") from None
        _warn_all(selection.warnings)
        return cls(settings, selector, selection, run_id)

    @property
    def pool(self) -> str:
        return self.settings.request.pool

    @property
    def endpoint_dict(self) -> dict[str, Any]:
        """The current endpoint with its password, for the run request only."""
        return self.current.endpoint.to_request_dict()

    @property
    def used(self) -> RedactedProxy:
        """The endpoint in use now (``proxy_used``)."""
        return self.current.redacted

    async def on_rotate(self, event: Event) -> ProxyUpdate:
        """Answer one ``rotate_proxy`` event (CONTRACT_PROXY §7); never raises."""

        def refuse(error: str) -> ProxyUpdate:
            return ProxyUpdate(run_id=self.run_id, seq=event.seq, ok=False, error=error)

        if self.rotations >= self.settings.max_rotations:
            logger.warning(
                "Warning: rotate_proxy refused: rotation limit reached ({} per run)", self.settings.max_rotations
            )
            return refuse("rotation limit reached")
        try:
            rotation = await self.selector.rotate_selection(self.current)
        except Exception as exc:  # a store or plugin error: the run keeps its endpoint
            message = str(exc) or type(exc).__name__
            logger.warning("Warning: proxy rotation failed: {}", message)
            return refuse(message)
        _warn_all(rotation.warnings)
        if rotation.changed:
            self.current = rotation
            self.rotations += 1
            self.endpoints.append(rotation.redacted)
        return ProxyUpdate(
            run_id=self.run_id,
            seq=event.seq,
            ok=True,
            changed=rotation.changed,
            proxy=rotation.endpoint.to_request_dict(),
        )

    async def aclose(self) -> None:
        """Release the state store's connections (Redis)."""
        await close_selector(self.selector)


def report_fields(proxy: RunProxy | None, executor_used: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run report's proxy fields: ``proxy_pool``, ``proxy_used`` (the executor's ``run_result.proxy_used``
    when it sent one, else the runtime's current endpoint; redacted either way), ``proxy_rotations`` and
    ``proxy_endpoints`` (every endpoint the run used, in order, redacted)."""
    if proxy is None:
        return {}
    used = proxy.used
    if executor_used:
        try:
            used = redact_proxy_endpoint(executor_used)
        except (TypeError, ValueError):
            pass
    return {
        "proxy_pool": proxy.pool,
        "proxy_used": used.to_dict(),
        "proxy_rotations": proxy.rotations,
        "proxy_endpoints": tuple(e.to_dict() for e in proxy.endpoints),
    }


async def close_selector(selector: ProxySelector) -> None:
    """Release the selector's state store connections (Redis); errors are only logged."""
    close = getattr(selector.store, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception as exc:
            logger.debug("closing the proxy state store failed: {}", exc)
