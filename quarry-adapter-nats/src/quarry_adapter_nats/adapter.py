"""The ``nats`` notification adapter (CONTRACT_INTEGRATION §2), with nats-py.

* Core NATS: ``PUBLISH <subject> <event JSON>`` then ``FLUSH`` (so the server has the message before
  :meth:`NatsAdapter.publish` returns).
* ``options.jetstream = true``: a JetStream publish that waits for the stream's ack, with header
  ``Nats-Msg-Id: <notification_id>`` so the stream's duplicate window drops a retried message.

The subject is ``options.subject`` (``--adapter-subject``), by default ``quarry.run_completed``; the URL is
``nats://host:4222`` or a comma-separated cluster. Connection errors and timeouts raise
:class:`~quarry_core.notify.RetryableNotificationError`; anything else (no stream for the subject,
authorization, a JetStream API error other than 503) is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from quarry_adapter_nats.config import jetstream_enabled, nats_servers, nats_subject
from quarry_core.errors import NotificationError
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import RetryableNotificationError, encode_event, redact_text, redact_url

__all__ = ["NatsAdapter"]

_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.UnexpectedEOF,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,
    OSError,
)


async def _ignore(*_args: Any) -> None:
    """nats-py callbacks: stay quiet, errors surface as exceptions of the publish."""


class NatsAdapter:
    """Publishes the ``run_completed`` event on NATS (core or JetStream).

    :param config: ``url`` (``nats://host:4222``, comma-separated for a cluster); ``timeout`` bounds connecting,
        the flush and the JetStream ack; ``options.subject``, ``options.jetstream``.
    """

    name = "nats"

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.servers = nats_servers(config.url)
        self.subject = nats_subject(config.options)
        self.jetstream = jetstream_enabled(config.options)
        self._target = redact_url(",".join(self.servers))
        self._nc: Client | None = None

    async def _connect(self) -> Client:
        if self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(
                servers=self.servers,
                connect_timeout=max(1, round(self.config.timeout)),
                allow_reconnect=False,
                # nats-py treats 0 as "never give up on a server" and would loop on a refused connection until
                # the attempt times out; 1 means: try each server twice, at once, then NoServersError (retried
                # by publish_with_retries with its own backoff).
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                error_cb=_ignore,
                disconnected_cb=_ignore,
                closed_cb=_ignore,
                name="quarry",
            )
        return self._nc

    async def publish(self, event: Mapping[str, Any]) -> None:
        """One attempt: connect if needed, publish and flush (or await the JetStream ack)."""
        body = encode_event(event)
        timeout = self.config.timeout
        try:
            nc = await self._connect()
            if self.jetstream:
                headers = {}
                if event.get("notification_id"):
                    headers["Nats-Msg-Id"] = str(event["notification_id"])
                await nc.jetstream(timeout=timeout).publish(
                    self.subject, body, timeout=timeout, headers=headers or None
                )
            else:
                await nc.publish(self.subject, body)
                await nc.flush(timeout=max(1, round(timeout)))
        except _RETRYABLE as exc:
            await self._reset()
            raise RetryableNotificationError(self._describe(exc)) from None
        except nats.js.errors.NoStreamResponseError:
            raise NotificationError(
                f"nats: no JetStream stream captures subject {self.subject!r} at {self._target}"
            ) from None
        except Exception as exc:
            await self._reset()
            raise NotificationError(f"nats: {self._describe(exc)}") from None

    def _describe(self, exc: BaseException) -> str:
        detail = str(exc) or exc.__class__.__doc__ or ""
        detail = " ".join(detail.split())
        what = "JetStream publish" if self.jetstream else "publish"
        return redact_text(f"{what} to {self.subject!r} at {self._target} failed: {type(exc).__name__}: {detail}")

    async def _reset(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:
                pass

    async def close(self) -> None:
        """Close the connection (pending messages were flushed by :meth:`publish`)."""
        await self._reset()
