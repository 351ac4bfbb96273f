"""One way to open a redis-py asyncio client: no hidden retries (ours own them), timeouts on every socket."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["close_client", "open_client"]


def open_client(url: str, *, timeout: float) -> aioredis.Redis:
    """A client for ``url`` whose connect and socket operations time out after ``timeout`` seconds.

    redis-py's own retry policy is disabled, so one call is one attempt: Quarry's retry loops decide.
    """
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )
    return client


async def close_client(client: Any) -> None:
    """Close a client and its pool (``aclose`` in redis-py >= 5.0.1, ``close`` before)."""
    closer = getattr(client, "aclose", None) or client.close
    await closer()
