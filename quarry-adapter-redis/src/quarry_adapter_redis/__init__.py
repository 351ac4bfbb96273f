"""quarry-adapter-redis: the ``redis`` notification adapter (pub/sub) and the ``redis`` event sink (Streams).

Registered through the ``quarry`` entry point ``adapter-redis`` (:mod:`quarry_adapter_redis.hooks`). The classes
are resolved lazily, so importing this package (as the entry point does) does not import redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loguru import logger as _logger

from quarry_adapter_redis.errors import RedisSinkError

if TYPE_CHECKING:
    from quarry_adapter_redis.adapter import RedisPubSubAdapter
    from quarry_adapter_redis.sink import RedisStreamSink

__version__ = "0.1.0"

_logger.disable("quarry_adapter_redis")

__all__ = ["RedisPubSubAdapter", "RedisSinkError", "RedisStreamSink", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "RedisPubSubAdapter":
        from quarry_adapter_redis.adapter import RedisPubSubAdapter

        return RedisPubSubAdapter
    if name == "RedisStreamSink":
        from quarry_adapter_redis.sink import RedisStreamSink

        return RedisStreamSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
