"""Proxy value types (proxy.md §1). Every type is a frozen attrs class with snake_case fields.

Only :class:`ProxyEndpoint` holds a password; its ``repr()`` shows ``password='***'``. Everything outward-facing
(reports, records, read-side output) uses :class:`RedactedProxy`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "BUILTIN_STRATEGIES",
    "PROTOCOLS",
    "STICKY_SCOPES",
    "JobProxyRequest",
    "ProxyEndpoint",
    "ProxyPool",
    "RedactedProxy",
    "Rotation",
    "SelectRequest",
    "Selection",
    "StickyConfig",
    "pool_fingerprint",
    "redact_proxy_endpoint",
]

#: Endpoint protocols Quarry accepts.
PROTOCOLS: tuple[str, ...] = ("http", "https", "socks5")
#: Scopes a sticky pool may key its assignments on.
STICKY_SCOPES: tuple[str, ...] = ("domain", "job", "origin")
#: Strategies that ship with quarry-core.
BUILTIN_STRATEGIES: tuple[str, ...] = ("random", "round_robin", "sticky")


def _password_repr(value: str | None) -> str:
    return "None" if value is None else "'***'"


@attrs.frozen
class RedactedProxy:
    """A proxy endpoint without its password: what reports, records and ``ctx.proxy`` show."""

    protocol: str
    host: str
    port: int
    username: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{protocol, host, port, username?}`` (``username`` only when set)."""
        d: dict[str, Any] = {"protocol": self.protocol, "host": self.host, "port": self.port}
        if self.username:
            d["username"] = self.username
        return d


@attrs.frozen
class ProxyEndpoint:
    """One proxy server. ``username`` and ``password`` are both set or both ``None``.

    ``repr()``/``str()`` never show the password (``password='***'``).
    """

    protocol: str
    host: str
    port: int
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=_password_repr)

    @property
    def server(self) -> str:
        """``<protocol>://<host>:<port>``, the Playwright ``proxy.server`` value."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{self.protocol}://{host}:{self.port}"

    @property
    def password_set(self) -> bool:
        """Whether the endpoint carries a password (read-side output shows only this)."""
        return bool(self.password)

    @property
    def identity(self) -> tuple[str, str, int, str]:
        """``(protocol, host, port, username)``: what makes two endpoints duplicates and feeds the fingerprint."""
        return (self.protocol, self.host, self.port, self.username or "")

    def redacted(self) -> RedactedProxy:
        """The endpoint without its password."""
        return RedactedProxy(self.protocol, self.host, self.port, self.username or None)

    def to_request_dict(self) -> dict[str, Any]:
        """The run request's ``proxy`` object, password included: for the private executor channel only
        (run request line, ``proxy_update`` frames)."""
        d: dict[str, Any] = {"protocol": self.protocol, "host": self.host, "port": self.port}
        if self.username:
            d["username"] = self.username
        if self.password:
            d["password"] = self.password
        return d

    def to_public_dict(self) -> dict[str, Any]:
        """``{protocol, host, port, username?, password_set}`` as ``inspect proxy`` shows it."""
        d = self.redacted().to_dict()
        d["password_set"] = self.password_set
        return d


def redact_proxy_endpoint(endpoint: ProxyEndpoint | Mapping[str, Any]) -> RedactedProxy:
    """Drop the password from an endpoint or from a ``{protocol, host, port, username?, password?}`` mapping."""
    if isinstance(endpoint, ProxyEndpoint):
        return endpoint.redacted()
    return RedactedProxy(
        protocol=str(endpoint.get("protocol", "")),
        host=str(endpoint.get("host", "")),
        port=int(endpoint.get("port", 0)),
        username=str(endpoint["username"]) if endpoint.get("username") else None,
    )


@attrs.frozen
class StickyConfig:
    """How a ``sticky`` pool keys its assignments; ``ttl_ms=None`` keeps them forever."""

    scope: Literal["job", "domain", "origin"] | str = "job"
    ttl_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{scope, ttl_ms}``."""
        return {"scope": self.scope, "ttl_ms": self.ttl_ms}


def pool_fingerprint(endpoints: tuple[ProxyEndpoint, ...] | list[ProxyEndpoint]) -> str:
    """SHA-256 (hex) of the ordered ``protocol:host:port:username`` lines. Never hashes a password."""
    lines = "\n".join(f"{e.protocol}:{e.host}:{e.port}:{e.username or ''}" for e in endpoints)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _endpoints(value: Iterable[ProxyEndpoint]) -> tuple[ProxyEndpoint, ...]:
    return tuple(value)


@attrs.frozen
class ProxyPool:
    """A named set of endpoints with a selection strategy (``proxies.<name>`` in the config file)."""

    name: str
    strategy: str
    endpoints: tuple[ProxyEndpoint, ...] = attrs.field(converter=_endpoints)
    sticky: StickyConfig | None = None
    recency_window: int | None = None

    @property
    def fingerprint(self) -> str:
        """See :func:`pool_fingerprint`; a change resets the pool's selection state."""
        return pool_fingerprint(self.endpoints)

    def summary(self) -> dict[str, Any]:
        """``{name, strategy, endpoint_count}`` as ``list pools`` shows it."""
        return {"name": self.name, "strategy": self.strategy, "endpoint_count": len(self.endpoints)}

    def recency_applies(self, effective_strategy: str) -> bool:
        """The recency window applies only to a ``random`` pool with a window selected as ``random`` (§6)."""
        return self.strategy == "random" and bool(self.recency_window) and effective_strategy == "random"


@attrs.frozen
class JobProxyRequest:
    """What a run asks for: a pool, optionally another strategy and an explicit sticky key."""

    pool: str
    strategy: str | None = None
    sticky_key: str | None = None


@attrs.frozen
class SelectRequest:
    """One selection. ``commit=False`` is a peek: the state is read, never written.

    ``domain``/``origin`` are already normalised (see :mod:`quarry_core.proxy.keys`); ``sticky_key`` is the
    explicit key as the user gave it (unprefixed).
    """

    pool: str
    strategy_override: str | None = None
    sticky_key: str | None = None
    domain: str | None = None
    origin: str | None = None
    job_id: str | None = None
    commit: bool = True


@attrs.frozen
class Selection:
    """The endpoint a selection chose.

    ``sticky_key`` is the stored (prefixed) key, set for the ``sticky`` strategy only. ``sequence`` is the pool's
    ``selections`` counter after this commit (the store's commit order), or its current value for a peek.
    ``warnings`` are ``Warning: …`` lines for the caller to print (a reset of a changed pool's state).
    """

    pool: str
    endpoint: ProxyEndpoint
    index: int
    strategy: str
    sticky_key: str | None = None
    committed: bool = False
    sequence: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def redacted(self) -> RedactedProxy:
        """The chosen endpoint without its password (``proxy_used``)."""
        return self.endpoint.redacted()

    def to_dict(self) -> dict[str, Any]:
        """``debug resolve proxy`` output: ``{endpoint{protocol, host, port, username?}, index, strategy,
        sticky_key?, committed}``."""
        d: dict[str, Any] = {"endpoint": self.redacted.to_dict(), "index": self.index, "strategy": self.strategy}
        if self.sticky_key is not None:
            d["sticky_key"] = self.sticky_key
        d["committed"] = self.committed
        return d


@attrs.frozen
class Rotation:
    """The outcome of a ``rotate_proxy`` request (proxy.md §8): ``changed`` is false for a one-endpoint pool."""

    pool: str
    endpoint: ProxyEndpoint
    index: int
    previous_index: int
    changed: bool
    strategy: str
    sticky_key: str | None = None
    rotations: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def redacted(self) -> RedactedProxy:
        """The new endpoint without its password."""
        return self.endpoint.redacted()

    def as_selection(self) -> Selection:
        """The run's current selection after this rotation (for the next rotation)."""
        return Selection(
            pool=self.pool,
            endpoint=self.endpoint,
            index=self.index,
            strategy=self.strategy,
            sticky_key=self.sticky_key,
            committed=True,
            warnings=self.warnings,
        )
