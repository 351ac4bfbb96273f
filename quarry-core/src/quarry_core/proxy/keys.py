"""Sticky keys and the domain/origin they may derive from (proxy.md §4).

The sticky key is, in order: the explicit ``sticky_key``; the pool's sticky scope (``job`` → job id, ``domain``,
``origin``); without a sticky config, the job id. It is stored prefixed by its source (``key:``, ``job:``,
``domain:``, ``origin:``) so scopes never collide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from quarry_core.proxy.errors import ProxyError
from quarry_core.proxy.model import ProxyPool, SelectRequest

__all__ = [
    "DEFAULT_PORTS",
    "normalize_domain",
    "normalize_origin",
    "origin_from_url",
    "select_request_for_job",
    "sticky_key_for",
    "url_from_job",
]

#: Default ports made explicit in an origin.
DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


def _idna_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host:
        return ""
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return host


def normalize_domain(value: str) -> str:
    """A lower-cased IDNA host. A full URL is accepted and reduced to its host."""
    value = value.strip()
    if "://" in value:
        host = urlsplit(value).hostname or ""
        return _idna_host(host)
    return _idna_host(value)


def origin_from_url(url: str) -> str | None:
    """``scheme://host:port`` with the default port explicit, or ``None`` when the URL has no scheme or host.

    ``https://Shop.Example/p?x=1`` → ``https://shop.example:443``.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = _idna_host(parts.hostname or "")
    if not scheme or not host:
        return None
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
        if port is None:
            return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def normalize_origin(value: str) -> str:
    """Normalise a ``--proxy-origin`` value like a derived one; unparseable values are kept (stripped)."""
    return origin_from_url(value) or value.strip()


def url_from_job(job: Mapping[str, Any] | None) -> str | None:
    """The job's ``url`` when it is a non-empty string."""
    if not job:
        return None
    url = job.get("url")
    return url if isinstance(url, str) and url.strip() else None


def select_request_for_job(
    pool: str,
    job: Mapping[str, Any] | None = None,
    *,
    job_id: str | None = None,
    strategy_override: str | None = None,
    sticky_key: str | None = None,
    domain: str | None = None,
    origin: str | None = None,
    commit: bool = True,
) -> SelectRequest:
    """Build a :class:`SelectRequest` for a run: ``--proxy-domain``/``--proxy-origin`` when given (normalised),
    else derived from a string ``url`` in the job."""
    url = url_from_job(job)
    if domain:
        domain = normalize_domain(domain) or None
    elif url is not None:
        domain = normalize_domain(url) or None
    else:
        domain = None
    if origin:
        origin = normalize_origin(origin) or None
    elif url is not None:
        origin = origin_from_url(url)
    else:
        origin = None
    return SelectRequest(
        pool=pool,
        strategy_override=strategy_override or None,
        sticky_key=sticky_key or None,
        domain=domain,
        origin=origin,
        job_id=job_id or None,
        commit=commit,
    )


def sticky_key_for(pool: ProxyPool, request: SelectRequest, *, required: bool = False) -> str | None:
    """The prefixed sticky key of a request, or ``None`` when none can be derived.

    With ``required=True`` a missing key raises ``ProxyError("sticky selection requires a sticky key")``.
    """
    key: str | None = None
    if request.sticky_key:
        key = f"key:{request.sticky_key}"
    elif pool.sticky is not None:
        scope = pool.sticky.scope
        if scope == "job" and request.job_id:
            key = f"job:{request.job_id}"
        elif scope == "domain" and request.domain:
            key = f"domain:{request.domain}"
        elif scope == "origin" and request.origin:
            key = f"origin:{request.origin}"
    elif request.job_id:
        key = f"job:{request.job_id}"
    if key is None and required:
        raise ProxyError("sticky selection requires a sticky key")
    return key
