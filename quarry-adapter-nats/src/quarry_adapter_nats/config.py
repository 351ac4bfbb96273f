"""Settings of the ``nats`` adapter, checked without importing nats-py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from quarry_core.errors import ConfigError
from quarry_core.notify import redact_url

__all__ = ["DEFAULT_SUBJECT", "SCHEMES", "jetstream_enabled", "nats_servers", "nats_subject"]

#: Subject of the ``nats`` adapter unless ``options.subject`` (``--adapter-subject``) is set.
DEFAULT_SUBJECT = "quarry.run_completed"
#: URL schemes nats-py connects to.
SCHEMES = ("nats", "tls")

_PREFIX = "invalid adapter config"


def nats_servers(url: str | None) -> list[str]:
    """The server URLs of ``nats://host:4222[,nats://host2:4222…]``; ``ConfigError`` (redacted) if invalid."""
    if url is None or not url.strip():
        raise ConfigError(f"{_PREFIX}: nats URL is required")
    servers = [part.strip() for part in url.split(",")]
    for server in servers:
        shown = redact_url(server)
        if not server:
            raise ConfigError(f"{_PREFIX}: empty server in nats URL {redact_url(url)!r}")
        try:
            parts = urlsplit(server)
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError as exc:
            raise ConfigError(f"{_PREFIX}: invalid nats URL {shown!r}: {exc}") from None
        if parts.scheme not in SCHEMES:
            raise ConfigError(f"{_PREFIX}: nats URL must start with nats:// or tls://, got {shown!r}")
        if not parts.hostname:
            raise ConfigError(f"{_PREFIX}: nats URL has no host: {shown!r}")
    return servers


def nats_subject(options: Mapping[str, Any]) -> str:
    """``options["subject"]`` or :data:`DEFAULT_SUBJECT`; wildcards and spaces are rejected."""
    subject = options.get("subject") or DEFAULT_SUBJECT
    if not isinstance(subject, str) or any(c in subject for c in " \t\r\n*>") or ".." in subject:
        raise ConfigError(f"{_PREFIX}: invalid nats subject {subject!r}")
    if subject.startswith(".") or subject.endswith("."):
        raise ConfigError(f"{_PREFIX}: invalid nats subject {subject!r}")
    return subject


def jetstream_enabled(options: Mapping[str, Any]) -> bool:
    """``options["jetstream"]``: a boolean, or the text ``true``/``false`` (``1``/``0``, ``yes``/``no``)."""
    value = options.get("jetstream", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    raise ConfigError(f"{_PREFIX}: nats jetstream must be true or false, got {value!r}")
