"""Proxy configuration validation (proxy.md §2-§3, cli.md §6 step 18).

Hard errors raise :class:`~quarry_core.errors.ConfigError` whose message is the key path plus the reason
(``proxies.residential.endpoints[1]: port must be an integer between 1 and 65535``) and never contains a
password, a username or a host value. Soft warnings are returned as strings starting with ``Warning: ``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from quarry_core.errors import ConfigError
from quarry_core.proxy.keys import url_from_job
from quarry_core.proxy.model import (
    BUILTIN_STRATEGIES,
    PROTOCOLS,
    STICKY_SCOPES,
    ProxyEndpoint,
    ProxyPool,
    StickyConfig,
)
from quarry_core.proxy.stores import StateStoreConfig

__all__ = [
    "POOL_NAME_PATTERN",
    "ROUND_ROBIN_WARN_THRESHOLD",
    "check_proxy_sources",
    "load_pools",
    "parse_legacy_proxy_config",
    "selection_input_warnings",
    "validate_proxy_endpoint",
    "validate_proxy_pool",
    "validate_run_proxy",
    "validate_state_store_config",
]

#: Pool names: a letter or digit, then up to 63 letters, digits, ``.``, ``_`` or ``-``.
POOL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: ``round_robin`` pools with more endpoints than this get a warning.
ROUND_ROBIN_WARN_THRESHOLD = 50

_ENDPOINT_KEYS = frozenset({"protocol", "host", "port", "username", "password"})
_POOL_KEYS = frozenset({"strategy", "endpoints", "sticky", "recency_window"})
_STICKY_KEYS = frozenset({"scope", "ttl_ms"})
_HOST_FORBIDDEN = re.compile(r"[\s/@]")


def _pool_path(name: str) -> str:
    return f"proxies.{name}" if POOL_NAME_PATTERN.fullmatch(name) else f"proxies.{json.dumps(name)}"


def _int_value(value: object) -> int | None:
    """An integer, or a decimal string of one (what ``${VAR}`` expansion yields); never a bool or a float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value.strip())
    return None


def _unknown_keys(raw: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f'{path}: unknown key "{key}" (valid: {", ".join(sorted(allowed))})')


def _credential(raw: Mapping[str, Any], field: str, path: str) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {field} must be a string")
    return value or None


def validate_proxy_endpoint(raw: Mapping[str, Any] | ProxyEndpoint, *, path: str = "endpoint") -> ProxyEndpoint:
    """Validate one endpoint mapping (``{protocol, host, port, username?, password?}``) or re-check a
    :class:`ProxyEndpoint`. Raises ``ConfigError("<path>: <reason>")``; empty credentials count as absent."""
    if isinstance(raw, ProxyEndpoint):
        raw = {
            "protocol": raw.protocol,
            "host": raw.host,
            "port": raw.port,
            "username": raw.username,
            "password": raw.password,
        }
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected an object with protocol, host and port")
    _unknown_keys(raw, _ENDPOINT_KEYS, path)
    protocol = raw.get("protocol")
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise ConfigError(f"{path}: protocol must be one of {', '.join(PROTOCOLS)}")
    host = raw.get("host")
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"{path}: host must be a non-empty string")
    if _HOST_FORBIDDEN.search(host) or "://" in host:
        raise ConfigError(f'{path}: host must be a bare host name without whitespace, "/", "@" or "://"')
    port = _int_value(raw.get("port"))
    if port is None or not 1 <= port <= 65535:
        raise ConfigError(f"{path}: port must be an integer between 1 and 65535")
    username = _credential(raw, "username", path)
    password = _credential(raw, "password", path)
    if (username is None) != (password is None):
        raise ConfigError(f"{path}: username and password must be set together")
    return ProxyEndpoint(protocol=protocol, host=host, port=port, username=username, password=password)


def validate_proxy_pool(
    name: str,
    raw: Mapping[str, Any],
    *,
    path: str | None = None,
    strategies: Collection[str] = BUILTIN_STRATEGIES,
) -> tuple[ProxyPool, list[str]]:
    """Validate ``proxies.<name>``; returns the pool and its soft warnings.

    ``strategies`` are the known strategy names (built-ins plus plugins). A missing ``strategy`` means
    ``round_robin``.
    """
    path = path or _pool_path(name)
    if not isinstance(name, str) or not POOL_NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{path}: invalid pool name (must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}})")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a table with strategy and endpoints")
    _unknown_keys(raw, _POOL_KEYS, path)
    strategy = raw.get("strategy", "round_robin")
    if not isinstance(strategy, str) or strategy not in strategies:
        shown = json.dumps(strategy) if isinstance(strategy, str) else type(strategy).__name__
        raise ConfigError(f"{path}: unknown strategy {shown} (valid: {', '.join(sorted(strategies))})")
    endpoints_raw = raw.get("endpoints")
    if endpoints_raw is None:
        raise ConfigError(f"{path}: at least one endpoint is required")
    if not isinstance(endpoints_raw, list | tuple):
        raise ConfigError(f"{path}.endpoints: expected a list of endpoints")
    if not endpoints_raw:
        raise ConfigError(f"{path}: at least one endpoint is required")
    endpoints = [validate_proxy_endpoint(e, path=f"{path}.endpoints[{i}]") for i, e in enumerate(endpoints_raw)]

    sticky: StickyConfig | None = None
    sticky_raw = raw.get("sticky")
    if sticky_raw is not None:
        if not isinstance(sticky_raw, Mapping):
            raise ConfigError(f"{path}.sticky: expected a table with scope and ttl_ms")
        _unknown_keys(sticky_raw, _STICKY_KEYS, f"{path}.sticky")
        scope = sticky_raw.get("scope", "job")
        if not isinstance(scope, str) or scope not in STICKY_SCOPES:
            raise ConfigError(f"{path}.sticky: scope must be one of {', '.join(STICKY_SCOPES)}")
        ttl_ms: int | None = None
        if sticky_raw.get("ttl_ms") is not None:
            ttl_ms = _int_value(sticky_raw["ttl_ms"])
            if ttl_ms is None or ttl_ms <= 0:
                raise ConfigError(f"{path}.sticky: ttl_ms must be an integer > 0")
        sticky = StickyConfig(scope=scope, ttl_ms=ttl_ms)

    recency_window: int | None = None
    if raw.get("recency_window") is not None:
        recency_window = _int_value(raw["recency_window"])
        if recency_window is None or recency_window <= 0:
            raise ConfigError(f"{path}: recency_window must be an integer > 0")

    warnings: list[str] = []
    seen: dict[tuple[str, str, int, str], int] = {}
    for i, endpoint in enumerate(endpoints):
        where = f"{path}.endpoints[{i}]"
        if endpoint.protocol == "socks5":
            if endpoint.username:
                warnings.append(
                    f"Warning: {where}: socks5 proxies are limited in Chromium; SOCKS5 authentication needs a "
                    "Playwright release that supports it (older ones fail the browser context: executor_crash)"
                )
            else:
                warnings.append(f"Warning: {where}: socks5 proxies are limited in Chromium")
        first = seen.setdefault(endpoint.identity, i)
        if first != i:
            warnings.append(
                f"Warning: {where}: duplicate of endpoints[{first}] (same protocol, host, port and username)"
            )
    if strategy == "round_robin" and len(endpoints) > ROUND_ROBIN_WARN_THRESHOLD:
        warnings.append(
            f"Warning: {path}: round_robin over {len(endpoints)} endpoints (more than "
            f"{ROUND_ROBIN_WARN_THRESHOLD}); consider random with a recency_window"
        )
    if recency_window is not None and strategy != "random":
        warnings.append(f'Warning: {path}: recency_window is ignored for strategy "{strategy}" (random only)')
    if sticky is not None and strategy != "sticky":
        warnings.append(f'Warning: {path}: sticky is ignored for strategy "{strategy}" (sticky only)')
    pool = ProxyPool(
        name=name, strategy=strategy, endpoints=tuple(endpoints), sticky=sticky, recency_window=recency_window
    )
    return pool, warnings


def load_pools(
    raw: Mapping[str, Mapping[str, Any]] | None,
    *,
    strategies: Collection[str] = BUILTIN_STRATEGIES,
) -> tuple[dict[str, ProxyPool], list[str]]:
    """Validate the config file's ``proxies`` table; returns pools sorted by name and all warnings."""
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        raise ConfigError("proxies: expected a table of pools")
    pools: dict[str, ProxyPool] = {}
    warnings: list[str] = []
    for name in sorted(raw, key=str):
        pool, pool_warnings = validate_proxy_pool(str(name), raw[name], strategies=strategies)
        pools[pool.name] = pool
        warnings.extend(pool_warnings)
    return pools, warnings


_LEGACY_ALIASES = {"recencyWindow": "recency_window", "ttlMs": "ttl_ms"}


def _legacy_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {_LEGACY_ALIASES.get(k, k): v for k, v in raw.items()}


def parse_legacy_proxy_config(
    path: str | Path, *, strategies: Collection[str] = BUILTIN_STRATEGIES
) -> tuple[dict[str, ProxyPool], list[str]]:
    """Read ``--proxy-config <file.json>``: a JSON array of pools ``{name, strategy, endpoints, sticky?,
    recency_window?}`` (upstream's ``recencyWindow``/``ttlMs`` spellings accepted). The warnings start with
    ``Warning: --proxy-config is deprecated``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"proxy config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read proxy config file {p}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # the decoder's message names a position, never the content
        raise ConfigError(f"malformed JSON in proxy config file {p}: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, list):
        raise ConfigError(f"proxy config file {p}: expected a JSON array of pools")
    pools: dict[str, ProxyPool] = {}
    warnings = ["Warning: --proxy-config is deprecated; define pools under [proxies] in the config file"]
    for i, entry in enumerate(data):
        where = f"proxy config file {p}: [{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected an object")
        entry = _legacy_keys(entry)
        name = entry.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: name must be a non-empty string")
        if isinstance(entry.get("sticky"), Mapping):
            entry["sticky"] = _legacy_keys(entry["sticky"])
        if name in pools:
            raise ConfigError(f'{where}: duplicate pool name "{name}"')
        pool, pool_warnings = validate_proxy_pool(name, entry, path=_pool_path(name), strategies=strategies)
        pools[name] = pool
        warnings.extend(pool_warnings)
    return dict(sorted(pools.items())), warnings


def check_proxy_sources(legacy_config: str | Path | None, config_proxies: Mapping[str, Any] | None) -> None:
    """``--proxy-config`` and config file ``proxies`` are exclusive."""
    if legacy_config is not None and config_proxies:
        raise ConfigError("cannot use --proxy-config and config file proxies")


def validate_run_proxy(
    pools: Mapping[str, ProxyPool],
    pool: str | None,
    strategy: str | None = None,
    *,
    strategies: Collection[str] = BUILTIN_STRATEGIES,
) -> None:
    """``--proxy-pool`` names a defined pool and ``--proxy-strategy`` is a known strategy."""
    if strategy is not None and strategy not in strategies:
        raise ConfigError(f'invalid --proxy-strategy "{strategy}" (valid: {", ".join(sorted(strategies))})')
    if pool is None:
        return
    if pool not in pools:
        defined = ", ".join(sorted(pools)) or "none"
        raise ConfigError(f'unknown proxy pool "{pool}" (defined: {defined})')


def validate_state_store_config(config: StateStoreConfig) -> list[str]:
    """Check ``proxy.state_store`` settings of the built-in stores; returns warnings for ignored settings."""
    warnings: list[str] = []
    if config.type == "redis":
        if not config.url:
            raise ConfigError("proxy.state_store.url is required for the redis state store (--proxy-state-url)")
        if not config.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("proxy.state_store.url: expected a redis://, rediss:// or unix:// URL")
    elif config.url and config.type in ("file", "memory"):
        warnings.append(f"Warning: proxy.state_store.url is ignored for the {config.type} state store")
    if config.path and config.type in ("memory", "redis"):
        warnings.append(f"Warning: proxy.state_store.path is ignored for the {config.type} state store")
    return warnings


def selection_input_warnings(
    pool: ProxyPool,
    *,
    strategy: str | None = None,
    sticky_key: str | None = None,
    domain: str | None = None,
    origin: str | None = None,
    job: Mapping[str, Any] | None = None,
) -> list[str]:
    """The soft warning for a sticky ``domain``/``origin`` scope with no way to derive the key."""
    effective = strategy or pool.strategy
    if effective != "sticky" or sticky_key or pool.sticky is None:
        return []
    scope = pool.sticky.scope
    if scope == "domain" and not domain and url_from_job(job) is None:
        return [
            f'Warning: proxies.{pool.name}.sticky: scope "domain" but neither --proxy-domain nor a url in the job; '
            "sticky selection requires a sticky key"
        ]
    if scope == "origin" and not origin and url_from_job(job) is None:
        return [
            f'Warning: proxies.{pool.name}.sticky: scope "origin" but neither --proxy-origin nor a url in the job; '
            "sticky selection requires a sticky key"
        ]
    return []
