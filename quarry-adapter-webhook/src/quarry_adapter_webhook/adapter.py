"""The ``webhook`` notification adapter: one HTTP ``POST`` of the event JSON per attempt.

* Headers: ``Content-Type: application/json``, ``User-Agent: quarry/<version>``,
  ``Idempotency-Key: <notification_id>``, then the configured ``--adapter-header``s (which may override them).
* ``2xx`` succeeds. ``408``, ``429``, ``5xx``, network errors and timeouts raise
  :class:`~quarry_core.notify.RetryableNotificationError` (with ``Retry-After`` parsed as seconds or an HTTP
  date); every other status, ``3xx`` included (redirects are never followed), raises a final
  ``NotificationError("webhook: non-retriable status <code>")``.
* URL credentials (sent as HTTP Basic auth by httpx) and header values never appear in messages.

Retries, the overall deadline and cancellation belong to :func:`quarry_core.notify.publish_with_retries`.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from quarry_core import __version__ as quarry_version
from quarry_core.errors import NotificationError
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import RetryableNotificationError, encode_event, redact_secrets, redact_url

__all__ = ["RETRYABLE_STATUSES", "WebhookAdapter", "parse_retry_after"]

#: Statuses retried besides every 5xx.
RETRYABLE_STATUSES = frozenset({408, 429})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if absent or bad.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class WebhookAdapter:
    """POSTs the ``run_completed`` event to ``config.url`` with httpx.

    :param config: the adapter settings; ``timeout`` bounds each request (connect, read, write, pool).
    :param client: an ``httpx.AsyncClient`` to use instead of an own one (it is then not closed by
        :meth:`close`); it must not follow redirects.
    """

    name = "webhook"

    def __init__(self, config: AdapterConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._url = config.url.strip()
        self._target = redact_url(self._url)
        self._secrets = dict(config.headers)
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(config.timeout), trust_env=False
        )

    def headers_for(self, event: Mapping[str, Any]) -> dict[str, str]:
        """The request headers for one event (configured headers last, so they win)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"quarry/{quarry_version}",
        }
        notification_id = event.get("notification_id")
        if notification_id:
            headers["Idempotency-Key"] = str(notification_id)
        headers.update(self.config.headers)
        return headers

    def _message(self, text: str) -> str:
        return redact_secrets(text, self._secrets)

    async def publish(self, event: Mapping[str, Any]) -> None:
        """One attempt: ``POST`` the event; raise as described in the module docstring."""
        try:
            response = await self._client.post(
                self._url, content=encode_event(event), headers=self.headers_for(event), follow_redirects=False
            )
        except httpx.TimeoutException as exc:
            raise RetryableNotificationError(
                self._message(f"POST {self._target} timed out ({type(exc).__name__})")
            ) from None
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise RetryableNotificationError(
                self._message(f"POST {self._target} failed: {type(exc).__name__}: {detail}")
            ) from None
        try:
            await response.aread()
        finally:
            await response.aclose()
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in RETRYABLE_STATUSES or 500 <= status < 600:
            raise RetryableNotificationError(
                f"status {status}", retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        raise NotificationError(f"webhook: non-retriable status {status}")

    async def close(self) -> None:
        """Close the HTTP client this adapter created."""
        if self._own_client:
            await self._client.aclose()
