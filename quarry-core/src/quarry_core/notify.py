"""Run-completed notifications (CONTRACT_INTEGRATION §2, §3): the event body, retries and redaction.

Notification adapters (``quarry_notification_adapters``) publish one ``run_completed`` message after a run is
persisted. This module holds everything adapters share, so each adapter only has to send bytes once:

* :func:`build_run_completed_event` builds the JSON body every adapter sends (§3);
* :func:`encode_event` serialises it (compact UTF-8 JSON);
* :func:`publish_with_retries` runs ``1 + retries`` attempts with backoff 0.5 s × 2^(i−1), honours a
  ``retry_after`` hint when it fits the remaining time, and bounds the whole publish *and* each attempt by
  ``timeout``;
* :func:`deliver_notification` builds an adapter from its factory, publishes with retries and closes it;
* :class:`RetryableNotificationError` (retry) versus plain :class:`~quarry_core.errors.NotificationError`
  (final) is how an adapter tells :func:`publish_with_retries` whether another attempt can help;
* :func:`redact_url`, :func:`redact_text`, :func:`redact_headers` and :func:`redact_secrets` keep URL
  credentials and header values out of every message.

How the runtime uses it (runtime.md §1 step 14)::

    plugin = host.notification_adapter(config.type).record
    event = build_run_completed_event(report, exit_code=exit_code)
    try:
        await deliver_notification(plugin.factory, config, event, cancel=control.killed)
    except NotificationError as err:
        logger.warning("Warning: adapter notification failed: {}", err)

This module imports nothing heavy (no HTTP or broker client); adapters import their clients lazily.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import anyio

from quarry_core.errors import ConfigError, NotificationError
from quarry_core.partitions import escape_partition_value
from quarry_core.protocol.constants import CONTRACT_VERSION
from quarry_core.protocol.values import format_ts
from quarry_core.retry import backoff_delay

if TYPE_CHECKING:
    from quarry_core.interfaces import AdapterConfig, NotificationAdapter
    from quarry_core.runtime.run import RunReport

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "EVENT_TYPE",
    "RETRY_BACKOFF_BASE",
    "CancelSignal",
    "RetryableNotificationError",
    "build_run_completed_event",
    "check_adapter_config",
    "deliver_notification",
    "encode_event",
    "events_partition_url",
    "publish_with_retries",
    "redact_headers",
    "redact_secrets",
    "redact_text",
    "redact_url",
    "storage_root_url",
]

#: ``event_type`` of the one message every adapter publishes.
EVENT_TYPE = "run_completed"
#: Default ``adapter.timeout`` (seconds): bounds the whole publish and each attempt.
DEFAULT_TIMEOUT = 10.0
#: Default ``adapter.retries``: attempts = 1 + retries.
DEFAULT_RETRIES = 3
#: Wait before retry ``i`` (1-based) is ``RETRY_BACKOFF_BASE * 2^(i-1)`` seconds.
RETRY_BACKOFF_BASE = 0.5

_REDACTED = "***"


# --------------------------------------------------------------------------- errors


class RetryableNotificationError(NotificationError):
    """A failure another attempt may fix (network error, timeout, HTTP 408/429/5xx, broker unavailable).

    Adapters raise it from ``publish``; :func:`publish_with_retries` retries it and raises a plain
    :class:`~quarry_core.errors.NotificationError` once the attempts or the time run out. ``retry_after`` is a
    server's hint (seconds) for the wait before the next attempt (an HTTP ``Retry-After``).

    A plain ``NotificationError`` is final: no further attempt is made.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------- redaction

# scheme://user:password@  or  scheme://:password@  (credentials of any URL inside a longer text)
_URL_CREDENTIALS = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://(?P<user>[^:/@\s]*)):(?P<password>[^@/\s]+)@")
_URL_USER_ONLY = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]+)@")


def redact_url(url: str) -> str:
    """``url`` with its password (or a bare user token) replaced by ``***``.

    >>> redact_url("https://user:secret@example.com/hook?x=1")
    'https://user:***@example.com/hook?x=1'
    >>> redact_url("redis://:secret@localhost:6379/0")
    'redis://:***@localhost:6379/0'
    >>> redact_url("https://token@example.com/")
    'https://***@example.com/'

    A comma-separated list of URLs (a NATS cluster) is redacted element by element. Text that does not parse
    as a URL is returned with credential-looking parts redacted by :func:`redact_text`.
    """
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{_REDACTED}@{hostport}"
    else:
        netloc = f"{_REDACTED}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact the credentials of every URL inside free text (an error message from a client library)."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('prefix')}:{_REDACTED}@", text)
    return _URL_USER_ONLY.sub(lambda m: f"{m.group('prefix')}{_REDACTED}@", text)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The header names with every value replaced by ``***`` (what may be logged of ``--adapter-header``)."""
    return {name: _REDACTED for name in headers}


def redact_secrets(text: str, secrets: Mapping[str, str] | list[str] | tuple[str, ...]) -> str:
    """Replace every occurrence of each secret (header *values* when given a mapping) in ``text`` by ``***``.

    Values shorter than 3 characters are left alone: they carry no secret and would shred the message. URL
    credentials are redacted too (:func:`redact_text`).
    """
    values = list(secrets.values()) if isinstance(secrets, Mapping) else list(secrets)
    for value in sorted({v for v in values if isinstance(v, str) and len(v) >= 3}, key=len, reverse=True):
        text = text.replace(value, _REDACTED)
    return redact_text(text)


# --------------------------------------------------------------------------- the event


def storage_root_url(root: str) -> str:
    """A storage root as a URL: fsspec URLs unchanged, local paths as ``file:///abs/path``.

    >>> storage_root_url("s3://bucket/prefix/")
    's3://bucket/prefix'
    """
    if "://" not in root:
        root = "file://" + os.path.abspath(root or ".")
    stripped = root.rstrip("/")
    return root if stripped.endswith(":") else stripped


def events_partition_url(root: str, dataset: str, *, source: str, category: str, day: str, run_id: str) -> str:
    """``<root URL>/datasets/<dataset>/events/source=…/category=…/day=…/run_id=…`` (values escaped)."""
    values = (("source", source), ("category", category), ("day", day), ("run_id", run_id))
    partition = "/".join(f"{key}={escape_partition_value(value)}" for key, value in values)
    base = storage_root_url(root)
    sep = "" if base.endswith("/") else "/"
    return f"{base}{sep}datasets/{dataset}/events/{partition}"


def build_run_completed_event(
    report: RunReport, *, exit_code: int, notification_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The ``RunCompletedEvent`` of a finished run (CONTRACT_INTEGRATION §3), ready for :func:`encode_event`.

    :param report: what :func:`quarry_core.runtime.run.execute_run` returned.
    :param exit_code: the exit code the run ends with (what ``quarry run`` exits with).
    :param notification_id: a fixed id (the outbox replays one); a fresh UUID4 by default.
    :param now: the ``timestamp`` (the current time by default).

    Lineage keys (``job_id``, ``parent_run_id``, ``spawned_by_run_id``, ``depth``) appear only when set
    (``depth`` only above 0); ``storage_path`` is the run's events partition under ``report.storage_root``.
    """
    s = report.settings
    event: dict[str, Any] = {
        "contract_version": CONTRACT_VERSION,
        "event_type": EVENT_TYPE,
        "notification_id": notification_id or str(uuid.uuid4()),
        "run_id": s.run_id,
    }
    if s.job_id is not None:
        event["job_id"] = s.job_id
    if s.parent_run_id is not None:
        event["parent_run_id"] = s.parent_run_id
    if s.spawned_by_run_id is not None:
        event["spawned_by_run_id"] = s.spawned_by_run_id
    if s.depth:
        event["depth"] = s.depth
    event.update(
        {
            "attempt": s.attempt,
            "source": s.source,
            "category": s.category,
            "day": report.day,
            "dataset": s.storage.dataset,
            "outcome": str(report.outcome),
            "message": report.message,
            "exit_code": exit_code,
            "event_count": report.event_count,
            "duration_ms": report.duration_ms,
            "storage_path": events_partition_url(
                report.storage_root or s.storage.path,
                s.storage.dataset,
                source=s.source,
                category=s.category,
                day=report.day,
                run_id=s.run_id,
            ),
            "timestamp": format_ts(now or datetime.now(UTC)),
        }
    )
    return event


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The wire body every adapter sends: compact UTF-8 JSON, keys in the event's order."""
    return json.dumps(dict(event), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------- configuration


def check_adapter_config(config: AdapterConfig) -> None:
    """The checks every adapter shares (cli.md §6 step 14); raises ``ConfigError("invalid adapter config: …")``.

    URL present, ``timeout`` > 0, ``retries`` >= 0, header names non-empty and no line breaks in headers.
    """
    if not isinstance(config.url, str) or not config.url.strip():
        raise ConfigError(f"invalid adapter config: {config.type} adapter URL is required")
    if not isinstance(config.timeout, (int, float)) or not math.isfinite(config.timeout) or config.timeout <= 0:
        raise ConfigError(f"invalid adapter config: timeout must be > 0, got {config.timeout!r}")
    if isinstance(config.retries, bool) or not isinstance(config.retries, int) or config.retries < 0:
        raise ConfigError(f"invalid adapter config: retries must be >= 0, got {config.retries!r}")
    for key, value in config.headers.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError("invalid adapter config: header name must not be empty")
        if any(c in key for c in "\r\n:") or key != key.strip():
            raise ConfigError(f"invalid adapter config: invalid header name {key!r}")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise ConfigError(f"invalid adapter config: header {key!r} has an invalid value")


# --------------------------------------------------------------------------- retries


class CancelSignal(Protocol):
    """What cancels a publish: ``asyncio.Event`` and ``anyio.Event`` both fit (``RunControl.killed``)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> Any: ...


def _plural(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _strip_name(name: str, message: str) -> str:
    prefix = f"{name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _with_name(name: str, message: str) -> str:
    return message if message.startswith(f"{name}: ") else f"{name}: {message}"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, NotificationError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _until_cancel(fn: Callable[[], Awaitable[None]], cancel: CancelSignal | None) -> bool:
    """Await ``fn()``; ``False`` if ``cancel`` fired first (``fn`` is then cancelled). Errors of ``fn`` propagate."""
    if cancel is None:
        await fn()
        return True
    if cancel.is_set():
        return False
    error: BaseException | None = None
    finished = False

    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            await cancel.wait()
            tg.cancel_scope.cancel()

        async def run() -> None:
            nonlocal error, finished
            try:
                await fn()
                finished = True
            except Exception as exc:
                error = exc
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(run)
    if error is not None:
        raise error
    return finished


async def publish_with_retries(
    adapter: NotificationAdapter,
    event: Mapping[str, Any],
    *,
    name: str,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
    cancel: CancelSignal | None = None,
) -> None:
    """Publish ``event`` with up to ``1 + retries`` attempts (CONTRACT_INTEGRATION §2).

    * The wait before retry ``i`` is 0.5 s × 2^(i−1); a :class:`RetryableNotificationError` with
      ``retry_after`` waits that long instead (if longer) when it fits the remaining time, else the hint is
      ignored.
    * ``timeout`` bounds the whole publish, retries and waits included, and each attempt; a timed-out attempt
      is retried while time remains. A wait that would outlast the deadline ends the publish at once.
    * Retried: :class:`RetryableNotificationError`, ``OSError`` (``ConnectionError``, ``TimeoutError``) and
      attempt timeouts. Final: a plain :class:`~quarry_core.errors.NotificationError` or any other exception.
    * ``cancel`` (``RunControl.killed``) is checked before each attempt and during waits and attempts.

    Raises :class:`~quarry_core.errors.NotificationError`: ``"<name>: failed after N attempts: <last error>"``
    when the attempts or the time ran out, ``"<name>: <error>"`` for a final error, ``"<name>: canceled
    after N attempts"`` on cancellation. Messages never contain URL credentials.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    deadline = anyio.current_time() + timeout
    attempts = 0
    last_error = "no attempt made"
    for attempt in range(1, retries + 2):
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            break
        if cancel is not None and cancel.is_set():
            raise NotificationError(f"{name}: canceled after {_plural(attempts)}")
        attempts += 1
        retry_after: float | None = None
        attempt_timeout = min(timeout, remaining)

        async def one(limit: float = attempt_timeout) -> None:
            with anyio.fail_after(limit):
                await adapter.publish(event)

        try:
            completed = await _until_cancel(one, cancel)
        except RetryableNotificationError as exc:
            last_error = redact_text(_strip_name(name, str(exc)))
            retry_after = exc.retry_after
        except TimeoutError as exc:
            # anyio.fail_after raises a bare TimeoutError on expiry; a client library may add a message.
            last_error = redact_text(_describe(exc)) if str(exc) else f"timed out after {round(attempt_timeout, 3):g}s"
        except OSError as exc:
            last_error = redact_text(_describe(exc))
        except NotificationError as exc:
            raise NotificationError(redact_text(_with_name(name, str(exc)))) from exc
        except Exception as exc:
            raise NotificationError(redact_text(_with_name(name, _describe(exc)))) from exc
        else:
            if not completed:
                raise NotificationError(f"{name}: canceled after {_plural(attempts)}")
            return
        if attempt > retries:
            break
        wait = backoff_delay(attempt, base=RETRY_BACKOFF_BASE, cap=math.inf)
        remaining = deadline - anyio.current_time()
        if retry_after is not None and wait < retry_after < remaining:
            wait = retry_after
        if wait >= remaining:
            break

        async def sleep(seconds: float = wait) -> None:
            await anyio.sleep(seconds)

        if not await _until_cancel(sleep, cancel):
            raise NotificationError(f"{name}: canceled after {_plural(attempts)}")
    raise NotificationError(f"{name}: failed after {_plural(attempts)}: {last_error}")


async def deliver_notification(
    factory: Callable[[AdapterConfig], NotificationAdapter],
    config: AdapterConfig,
    event: Mapping[str, Any],
    *,
    cancel: CancelSignal | None = None,
) -> None:
    """Build an adapter with ``factory(config)``, :func:`publish_with_retries`, then close it.

    Every failure (building included) surfaces as a :class:`~quarry_core.errors.NotificationError` naming the
    adapter type; the caller prints ``Warning: adapter notification failed: <error>`` and keeps its exit code.
    A close error after a successful publish is ignored (the message was delivered).
    """
    try:
        adapter = factory(config)
    except Exception as exc:
        raise NotificationError(redact_text(f"{config.type}: cannot build adapter: {_describe(exc)}")) from exc
    try:
        await publish_with_retries(
            adapter, event, name=config.type, retries=config.retries, timeout=config.timeout, cancel=cancel
        )
    finally:
        try:
            with anyio.move_on_after(min(config.timeout, 5.0), shield=True):
                await adapter.close()
        except Exception:
            pass
