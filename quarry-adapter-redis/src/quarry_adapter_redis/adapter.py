"""The ``redis`` notification adapter: ``PUBLISH <channel> <event JSON>`` (CONTRACT_INTEGRATION §2).

The channel is ``config.options["channel"]`` (``--adapter-channel``), by default ``quarry:run_completed``.
Every error is retryable (:class:`~quarry_core.notify.RetryableNotificationError`); the number of subscribers
that received the message does not matter (pub/sub is fire-and-forget; zero receivers still succeeds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis

from quarry_adapter_redis._client import close_client, open_client
from quarry_adapter_redis.config import DEFAULT_CHANNEL, check_redis_url
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import RetryableNotificationError, encode_event, redact_text, redact_url

__all__ = ["RedisPubSubAdapter"]


class RedisPubSubAdapter:
    """Publishes the ``run_completed`` event on a Redis pub/sub channel.

    :param config: ``url`` is ``redis://[:password@]host:port[/db]`` or ``rediss://…`` (invalid → ``ConfigError``);
        ``timeout`` bounds connecting and each socket operation; ``options.channel`` names the channel.
    """

    name = "redis"

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.url = check_redis_url(config.url, prefix="invalid adapter config")
        channel = config.options.get("channel") or DEFAULT_CHANNEL
        self.channel = str(channel)
        self._target = redact_url(self.url)
        self._client: aioredis.Redis | None = None

    async def publish(self, event: Mapping[str, Any]) -> None:
        """One attempt: ``PUBLISH``; any failure raises ``RetryableNotificationError``."""
        try:
            if self._client is None:
                self._client = open_client(self.url, timeout=self.config.timeout)
            await self._client.publish(self.channel, encode_event(event))
        except Exception as exc:
            # A failed connection may be half-open; start from a fresh client on the next attempt.
            await self._reset()
            detail = str(exc) or type(exc).__name__
            raise RetryableNotificationError(
                redact_text(f"PUBLISH {self.channel} to {self._target} failed: {type(exc).__name__}: {detail}")
            ) from None

    async def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await close_client(client)
            except Exception:
                pass

    async def close(self) -> None:
        """Close the connection pool."""
        await self._reset()
