"""The ``redis`` event sink: every batch a policy writes, appended to a Redis Stream (CONTRACT_INTEGRATION §5).

Per batch, ONE pipeline (``MULTI``/``EXEC``, so a connection lost before ``EXEC`` writes nothing) of::

    XADD <stream_key> MAXLEN ~ <max_len> * run_id … event_type … seq … timestamp … payload … source …
         category … event_id … attempt … [job_id …] contract_version …

(no ``MAXLEN`` when ``max_len`` is −1). After the first successful write, ``EXPIRE <stream_key> <ttl>`` once
per sink, best effort (not when ``ttl`` is −1). An empty batch makes no call. A failed batch is retried whole
after 0.5 s × 2^(i−1), ``1 + retries`` attempts in all, each bounded by ``timeout``; a reply lost after
``EXEC`` means the retry writes the batch twice, so consumers deduplicate on (``run_id``, ``seq``).

An :class:`~quarry_core.protocol.frames.Event` carries neither ``source`` nor ``category``: **the runtime
builds one sink per run** and passes them as ``EventSinkConfig.options["source"]`` and ``["category"]``
(next to the user's ``stream_key``, ``max_len``, ``ttl``, ``timeout`` and ``retries``)::

    config = attrs.evolve(sink_config, options={**sink_config.options, "source": s.source,
                                                "category": s.category})
    sink = host.event_sink("redis").record.factory(config)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from quarry_adapter_redis._client import close_client, open_client
from quarry_adapter_redis.config import parse_sink_settings
from quarry_adapter_redis.errors import RedisSinkError
from quarry_core.errors import ConfigError
from quarry_core.interfaces import EventSinkConfig
from quarry_core.notify import redact_text, redact_url
from quarry_core.retry import backoff_delay

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from quarry_core.protocol.frames import Event

__all__ = ["RETRY_BACKOFF_BASE", "RedisStreamSink", "stream_fields"]

#: Wait before retry ``i`` (1-based) of a failed batch: ``RETRY_BACKOFF_BASE * 2^(i-1)`` seconds.
RETRY_BACKOFF_BASE = 0.5


def stream_fields(event: Event, *, source: str, category: str) -> dict[str, str]:
    """The ``XADD`` field/value pairs of one event, in wire order; every value is a string."""
    fields = {
        "run_id": event.run_id,
        "event_type": event.type,
        "seq": str(event.seq),
        "timestamp": event.ts,
        "payload": json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False),
        "source": source,
        "category": category,
        "event_id": event.event_id,
        "attempt": str(event.attempt),
    }
    if event.job_id is not None:
        fields["job_id"] = event.job_id
    fields["contract_version"] = event.contract_version
    return fields


class RedisStreamSink:
    """Appends event batches to a Redis Stream; see the module docstring for the exact commands.

    :param config: ``url`` is the Redis URL; ``options`` holds ``stream_key``, ``max_len``, ``ttl``,
        ``timeout``, ``retries`` and the run's ``source`` and ``category`` (required, set by the runtime).
    :raises ConfigError: invalid settings, or ``source``/``category`` missing.
    """

    label = "redis"

    def __init__(self, config: EventSinkConfig) -> None:
        self.config = config
        self.settings = parse_sink_settings(config.url, config.options, strict=False)
        if self.settings.source is None or self.settings.category is None:
            raise ConfigError(
                "invalid event sink config: redis sink needs options source and category "
                "(the runtime builds one sink per run with them)"
            )
        self.source: str = self.settings.source
        self.category: str = self.settings.category
        self._target = f"{redact_url(self.settings.url)} stream {self.settings.stream_key}"
        self._client: aioredis.Redis | None = None
        self._expired = False
        self._closed = False
        self.batches_written = 0
        self.retries_made = 0

    def _connect(self) -> aioredis.Redis:
        if self._client is None:
            self._client = open_client(self.settings.url, timeout=self.settings.timeout)
        return self._client

    async def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                with anyio.move_on_after(self.settings.timeout, shield=True):
                    await close_client(client)
            except Exception:
                pass

    async def _write(self, batch: Sequence[Event]) -> None:
        client = self._connect()
        pipe = client.pipeline(transaction=True)
        s = self.settings
        for event in batch:
            pipe.xadd(
                s.stream_key,
                stream_fields(event, source=self.source, category=self.category),  # type: ignore[arg-type]
                maxlen=s.max_len,
                approximate=True,
            )
        with anyio.fail_after(s.timeout):
            await pipe.execute()

    async def _expire(self) -> None:
        """``EXPIRE`` once after the first successful write; failures are ignored (best effort)."""
        if self._expired or self.settings.ttl is None:
            return
        self._expired = True
        try:
            with anyio.fail_after(self.settings.timeout):
                await self._connect().expire(self.settings.stream_key, self.settings.ttl)
        except Exception:
            await self._reset()

    async def write_events(self, batch: Sequence[Event]) -> None:
        """Write one batch (one pipeline per attempt); raise :class:`RedisSinkError` when every attempt failed."""
        if not batch:
            return
        if self._closed:
            raise RedisSinkError(f"write to {self._target} after close", attempts=0)
        attempts = self.settings.retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                await self._write(batch)
            except Exception as exc:
                detail = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else "")
                last = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
                await self._reset()
                if attempt < attempts:
                    self.retries_made += 1
                    await anyio.sleep(backoff_delay(attempt, base=RETRY_BACKOFF_BASE, cap=math.inf))
                continue
            self.batches_written += 1
            await self._expire()
            return
        raise RedisSinkError(
            redact_text(
                f"XADD to {self._target} failed after {attempts} attempt{'s' if attempts != 1 else ''}: {last}"
            ),
            attempts=attempts,
        )

    async def close(self) -> None:
        """Close the connection pool; later writes fail."""
        self._closed = True
        await self._reset()

    def statistics(self) -> dict[str, Any]:
        """Counters for tests and debugging: batches written, retries made, whether ``EXPIRE`` was sent."""
        return {"batches_written": self.batches_written, "retries": self.retries_made, "expired": self._expired}
