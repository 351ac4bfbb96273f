"""The notification step of a run (CONTRACT_RUN §3 step 14, CONTRACT_INTEGRATION §1, §3).

After the run's data, run and metrics records are persisted and ``quarry_run_finished`` has been called, the
configured adapter publishes one ``run_completed`` event. Whatever happens here is a warning on stderr; the exit
code never changes. With the outbox (``--adapter-outbox``) a ``pending`` record is written to Lode first and a
``delivered`` (or a new ``pending`` with the attempt count and last error) appended afterwards, so
``quarry adapter drain`` can retry what did not arrive (:mod:`quarry_core.runtime.outbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from loguru import logger

from quarry_core.errors import NotificationError
from quarry_core.interfaces import AdapterConfig, NotificationAdapter, RunPartition
from quarry_core.notify import CancelSignal, build_run_completed_event, deliver_notification, redact_text

if TYPE_CHECKING:
    from quarry_core.plugins import PluginHost
    from quarry_core.runtime.run import RunReport

__all__ = [
    "DEFAULT_MAX_AGE",
    "NotificationSettings",
    "PublishResult",
    "notify_after_run",
    "notify_run",
    "publish",
]

#: Default ``adapter.max_age`` (``quarry adapter drain --max-age``): 7 days, in seconds.
DEFAULT_MAX_AGE = 7 * 24 * 3600.0


@attrs.frozen
class NotificationSettings:
    """The adapter of a run and what surrounds it (``adapter.*``); built and validated by the CLI (step 14)."""

    adapter: AdapterConfig
    outbox: bool = False
    notify_children: bool = False
    drain_on_run: bool = False
    max_age: float = DEFAULT_MAX_AGE


@attrs.frozen
class PublishResult:
    """How one publish ended: ``attempts`` made and the (redacted) ``error``, ``None`` when delivered."""

    attempts: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


class _Counting:
    """Counts ``publish`` calls of the adapter it wraps (the outbox stores the attempt count)."""

    def __init__(self, inner: NotificationAdapter) -> None:
        self.inner = inner
        self.calls = 0

    async def publish(self, event: Mapping[str, Any]) -> None:
        self.calls += 1
        await self.inner.publish(event)

    async def close(self) -> None:
        await self.inner.close()


async def publish(
    host: PluginHost, config: AdapterConfig, event: Mapping[str, Any], *, cancel: CancelSignal | None = None
) -> PublishResult:
    """Build the adapter ``config.type`` through the plugin host and publish ``event`` with retries.

    Never raises for delivery problems: a build error, an unknown adapter or a failed publish come back as
    :attr:`PublishResult.error` (already redacted).
    """
    counted: list[_Counting] = []
    try:
        factory: Callable[[AdapterConfig], Any] = host.notification_adapter(config.type).record.factory
    except Exception as exc:
        return PublishResult(0, redact_text(f"{config.type}: cannot build adapter: {exc}"))

    def counting_factory(cfg: AdapterConfig) -> NotificationAdapter:
        adapter = _Counting(factory(cfg))
        counted.append(adapter)
        return adapter

    try:
        await deliver_notification(counting_factory, config, event, cancel=cancel)
    except NotificationError as exc:
        return PublishResult(counted[0].calls if counted else 0, str(exc))
    except Exception as exc:  # a plugin bug must not end the run's reporting
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return PublishResult(counted[0].calls if counted else 0, redact_text(f"{config.type}: {detail}"))
    return PublishResult(counted[0].calls if counted else 1)


async def notify_run(
    report: RunReport,
    exit_code: int,
    host: PluginHost,
    settings: NotificationSettings,
    *,
    cancel: CancelSignal | None = None,
) -> PublishResult:
    """Publish the run's ``run_completed`` event (and keep the outbox when enabled); warn on failure.

    Returns what happened, for callers that report it; the exit code is never affected.
    """
    from quarry_core.runtime import outbox

    event = build_run_completed_event(report, exit_code=exit_code)
    s = report.settings
    partition = RunPartition(s.source, s.category, report.day, s.run_id)
    box = outbox.Outbox.open(host, s.storage) if settings.outbox else None
    entry = outbox.new_entry(settings.adapter, event)
    # the pending record first; if it cannot be written, warn and publish anyway
    recorded = box is not None and await box.append(partition, entry)
    result = await publish(host, settings.adapter, event, cancel=cancel)
    if not result.delivered:
        logger.warning("Warning: adapter notification failed: {}", result.error)
    if box is not None:
        if recorded:
            await box.append(partition, entry.after(result))
        await box.close()
    return result


async def notify_after_run(report: RunReport, control: Any, host: PluginHost) -> PublishResult | None:
    """Step 14 of ``quarry run``: notify (root runs; children only with ``adapter.notify_children``), then
    drain the outbox when ``adapter.drain_on_run`` is set. Skipped after a second signal (``control.killed``).

    Nothing here raises or changes the exit code: every problem is a warning.
    """
    settings = report.settings.notification
    if settings is None or control.killed.is_set():
        return None
    if report.settings.depth and not settings.notify_children:
        return None
    exit_code = control.exit_code if control.exit_code is not None else report.exit_code
    try:
        result = await notify_run(report, exit_code, host, settings, cancel=control.killed)
    except Exception as exc:  # a bug in a plugin or here must never change the run's outcome
        logger.warning("Warning: adapter notification failed: {}", redact_text(f"{type(exc).__name__}: {exc}"))
        return None
    if settings.drain_on_run and settings.outbox and not control.killed.is_set():
        from quarry_core.runtime import outbox

        try:
            rows = outbox.read_rows(host, report.settings.storage)
            await outbox.drain(
                host,
                report.settings.storage,
                rows,
                settings.adapter,
                max_age=settings.max_age,
                limit=100,
                cancel=control.killed,
            )
        except Exception as exc:
            logger.warning(
                "Warning: outbox drain after the run failed: {}", redact_text(f"{type(exc).__name__}: {exc}")
            )
    return result
