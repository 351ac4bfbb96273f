"""Entry point of quarry-adapter-redis (``[project.entry-points.quarry] adapter-redis``).

Registers notification adapter ``redis`` (pub/sub) and event sink ``redis`` (Streams). Imports nothing heavy:
redis-py is imported inside the factories, when a run actually uses Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from quarry_adapter_redis.config import (
    DEFAULT_CHANNEL,
    DEFAULT_MAX_LEN,
    DEFAULT_SINK_RETRIES,
    DEFAULT_SINK_TIMEOUT,
    DEFAULT_STREAM_KEY,
    DEFAULT_TTL,
    check_redis_url,
    parse_sink_settings,
)
from quarry_core import hookimpl
from quarry_core.errors import ConfigError
from quarry_core.notify import check_adapter_config
from quarry_core.registrations import EventSinkPlugin, NotificationAdapterPlugin, PluginOption

if TYPE_CHECKING:
    from quarry_core.interfaces import AdapterConfig, EventSink, EventSinkConfig, NotificationAdapter

__all__ = [
    "SINK_OPTIONS",
    "make_redis_adapter",
    "make_redis_sink",
    "quarry_event_sinks",
    "quarry_notification_adapters",
    "validate_redis_adapter_config",
    "validate_redis_sink_config",
]


def make_redis_adapter(config: AdapterConfig) -> NotificationAdapter:
    """Factory of the ``redis`` adapter: ``(AdapterConfig) -> NotificationAdapter``."""
    from quarry_adapter_redis.adapter import RedisPubSubAdapter

    return RedisPubSubAdapter(config)


def make_redis_sink(config: EventSinkConfig) -> EventSink:
    """Factory of the ``redis`` event sink: ``(EventSinkConfig) -> EventSink``.

    ``config.options`` must carry the run's ``source`` and ``category``: the runtime builds one sink per run.
    """
    from quarry_adapter_redis.sink import RedisStreamSink

    return RedisStreamSink(config)


def validate_redis_adapter_config(config: AdapterConfig) -> None:
    """``ConfigError("invalid adapter config: …")``: URL, timeout, retries, and a non-empty ``channel``."""
    check_adapter_config(config)
    check_redis_url(config.url, prefix="invalid adapter config")
    channel = config.options.get("channel")
    if channel is not None and (not isinstance(channel, str) or not channel):
        raise ConfigError(f"invalid adapter config: redis channel must be a non-empty string, got {channel!r}")


def validate_redis_sink_config(config: EventSinkConfig) -> None:
    """``ConfigError("invalid event sink config: …")``: URL, delivery and options (before the run starts,
    so ``source``/``category`` are not required here)."""
    if config.delivery not in ("mandatory", "best_effort"):
        raise ConfigError(
            f'invalid event sink config: redis delivery must be "mandatory" or "best_effort", got {config.delivery!r}'
        )
    parse_sink_settings(config.url, config.options, strict=True)


#: What the Redis Streams sink reads from its options (``--event-sink-redis-*``, ``events.sinks[]``).
SINK_OPTIONS = (
    PluginOption("stream_key", summary="stream to XADD to", default=DEFAULT_STREAM_KEY),
    PluginOption(
        "max_len", kind="integer", summary="MAXLEN ~ per XADD (0 = default, -1 = none)", default=DEFAULT_MAX_LEN
    ),
    PluginOption(
        "ttl", kind="duration", summary="EXPIRE after the first write (0 = default, -1 = none)", default=DEFAULT_TTL
    ),
    PluginOption("timeout", kind="duration", summary="bound of each Redis operation", default=DEFAULT_SINK_TIMEOUT),
    PluginOption("retries", kind="integer", summary="retries of a failed batch", default=DEFAULT_SINK_RETRIES),
)


@hookimpl
def quarry_notification_adapters() -> Iterator[NotificationAdapterPlugin]:
    yield NotificationAdapterPlugin(
        name="redis",
        factory=make_redis_adapter,
        summary="PUBLISH the run_completed event on a Redis pub/sub channel",
        validate=validate_redis_adapter_config,
        options=(PluginOption("channel", summary="pub/sub channel (--adapter-channel)", default=DEFAULT_CHANNEL),),
    )


@hookimpl
def quarry_event_sinks() -> Iterator[EventSinkPlugin]:
    yield EventSinkPlugin(
        name="redis",
        factory=make_redis_sink,
        summary="XADD every event batch to a Redis Stream (MAXLEN ~, EXPIRE)",
        validate=validate_redis_sink_config,
        options=SINK_OPTIONS,
    )
