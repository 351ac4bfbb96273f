"""Settings of the Redis adapter and the Redis Streams event sink, validated without importing redis-py.

Every error is a ``ConfigError`` whose message starts ``invalid adapter config:`` or ``invalid event sink
config:`` (cli.md §6 steps 14-15) and never contains a password.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from quarry_core.errors import ConfigError
from quarry_core.notify import redact_url
from quarry_core.units import parse_duration

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_MAX_LEN",
    "DEFAULT_SINK_RETRIES",
    "DEFAULT_SINK_TIMEOUT",
    "DEFAULT_STREAM_KEY",
    "DEFAULT_TTL",
    "SINK_OPTION_KEYS",
    "StreamSinkSettings",
    "check_redis_url",
    "parse_sink_settings",
]

#: ``PUBLISH`` channel of the ``redis`` adapter unless ``options.channel`` is set.
DEFAULT_CHANNEL = "quarry:run_completed"
#: Stream of the ``redis`` event sink unless ``options.stream_key`` is set.
DEFAULT_STREAM_KEY = "quarry:events"
#: ``MAXLEN ~`` of every ``XADD`` (``max_len`` 0 means this; −1 disables trimming).
DEFAULT_MAX_LEN = 100_000
#: ``EXPIRE`` of the stream after the first write, seconds (``ttl`` 0 means this; −1 disables).
DEFAULT_TTL = 24 * 3600
#: Bound of each Redis operation of the sink, seconds.
DEFAULT_SINK_TIMEOUT = 2.0
#: Retries of a failed batch (attempts = 1 + retries).
DEFAULT_SINK_RETRIES = 2
#: Every key the sink reads from ``EventSinkConfig.options`` (``source``/``category`` are set by the runtime).
SINK_OPTION_KEYS = frozenset({"stream_key", "max_len", "ttl", "timeout", "retries", "source", "category"})


def check_redis_url(url: str | None, *, prefix: str) -> str:
    """Return the stripped URL if it is ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://…``.

    :param prefix: the message prefix, ``"invalid adapter config"`` or ``"invalid event sink config"``.
    :raises ConfigError: ``<prefix>: <reason>`` with the URL's password redacted.
    """
    if url is None or not str(url).strip():
        raise ConfigError(f"{prefix}: redis URL is required")
    text = str(url).strip()
    shown = redact_url(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{prefix}: invalid redis URL {shown!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"{prefix}: redis URL must start with redis:// or rediss://, got {shown!r}")
    if not parts.hostname:
        raise ConfigError(f"{prefix}: redis URL has no host: {shown!r}")
    if port == 0:
        raise ConfigError(f"{prefix}: invalid redis URL {shown!r}: port must be 1-65535")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"{prefix}: invalid redis URL {shown!r}: database must be a number, got {db!r}")
    return text


@attrs.frozen
class StreamSinkSettings:
    """The parsed options of one Redis Streams sink. ``max_len``/``ttl`` of ``None`` mean "disabled" (−1)."""

    url: str
    stream_key: str = DEFAULT_STREAM_KEY
    max_len: int | None = DEFAULT_MAX_LEN
    ttl: int | None = DEFAULT_TTL
    timeout: float = DEFAULT_SINK_TIMEOUT
    retries: int = DEFAULT_SINK_RETRIES
    source: str | None = None
    category: str | None = None


def _int(options: Mapping[str, Any], key: str, default: int, *, prefix: str) -> int:
    value = options.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{prefix}: redis {key}: expected integer, got {value!r}")
    return value


def _seconds(options: Mapping[str, Any], key: str, default: float, *, prefix: str) -> float:
    value = options.get(key, default)
    if isinstance(value, str) and value.strip() == "-1":
        return -1.0
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == -1:
        return -1.0
    try:
        seconds = parse_duration(value, bare_number_seconds=True)
    except ValueError as exc:
        raise ConfigError(f"{prefix}: redis {key}: {exc}") from None
    if not math.isfinite(seconds):
        raise ConfigError(f"{prefix}: redis {key}: must be finite, got {value!r}")
    return seconds


def parse_sink_settings(url: str | None, options: Mapping[str, Any], *, strict: bool = True) -> StreamSinkSettings:
    """Parse and check the sink's URL and options (see :data:`SINK_OPTION_KEYS`).

    ``max_len``: integer, 0 → :data:`DEFAULT_MAX_LEN`, −1 → no ``MAXLEN``. ``ttl``: seconds or a duration
    (``"24h"``), 0 → :data:`DEFAULT_TTL`, −1 → no ``EXPIRE``. ``timeout``: seconds or a duration, > 0.
    ``retries``: integer >= 0. With ``strict``, unknown keys are rejected.

    :raises ConfigError: ``invalid event sink config: <reason>``.
    """
    prefix = "invalid event sink config"
    checked = check_redis_url(url, prefix=prefix)
    if strict:
        unknown = sorted(str(k) for k in options if k not in SINK_OPTION_KEYS)
        if unknown:
            known = ", ".join(sorted(SINK_OPTION_KEYS))
            raise ConfigError(f'{prefix}: redis: unknown option "{unknown[0]}" (known: {known})')
    stream_key = options.get("stream_key", DEFAULT_STREAM_KEY)
    if not isinstance(stream_key, str) or not stream_key:
        raise ConfigError(f"{prefix}: redis stream_key must be a non-empty string, got {stream_key!r}")
    max_len = _int(options, "max_len", DEFAULT_MAX_LEN, prefix=prefix)
    if max_len < -1:
        raise ConfigError(f"{prefix}: redis max_len must be >= -1 (-1 disables trimming), got {max_len}")
    ttl = _seconds(options, "ttl", float(DEFAULT_TTL), prefix=prefix)
    if ttl != -1 and 0 < ttl < 1:
        raise ConfigError(f"{prefix}: redis ttl must be at least 1s, got {ttl:g}s")
    timeout = _seconds(options, "timeout", DEFAULT_SINK_TIMEOUT, prefix=prefix)
    if timeout <= 0:
        raise ConfigError(f"{prefix}: redis timeout must be > 0, got {options.get('timeout')!r}")
    retries = _int(options, "retries", DEFAULT_SINK_RETRIES, prefix=prefix)
    if retries < 0:
        raise ConfigError(f"{prefix}: redis retries must be >= 0, got {retries}")
    identity: dict[str, str | None] = {}
    for key in ("source", "category"):
        value = options.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{prefix}: redis {key} must be a non-empty string, got {value!r}")
        identity[key] = value
    return StreamSinkSettings(
        url=checked,
        stream_key=stream_key,
        max_len=None if max_len == -1 else (max_len or DEFAULT_MAX_LEN),
        ttl=None if ttl == -1 else (math.ceil(ttl) or DEFAULT_TTL),
        timeout=timeout,
        retries=retries,
        source=identity["source"],
        category=identity["category"],
    )
