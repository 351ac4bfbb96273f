"""The notification step of a run (CONTRACT_RUN §3 step 14, CONTRACT_INTEGRATION §1, §3).

After the run's data, run and metrics records are persisted and ``quarry_run_finished`` has been called, every
configured adapter publishes the run's one ``run_completed`` event (the same body and ``notification_id`` for
each). Adapters are delivered concurrently and independently: one failing or hanging never blocks or changes
another. Whatever happens here is a warning on stderr; the exit code never changes. With the outbox
(``--adapter-outbox``) each adapter gets its own ``pending`` record in Lode first and a ``delivered`` (or a new
``pending`` with the attempt count and last error) afterwards, so ``quarry adapter drain`` can retry what did not
arrive (:mod:`quarry_core.runtime.outbox`).
"""

from __future__ import annotations

import asyncio
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
    "AdapterTarget",
    "NotificationSettings",
    "PublishResult",
    "notify_after_run",
    "notify_run",
    "publish",
]

#: Default ``adapter.max_age`` (``quarry adapter drain --max-age``): 7 days, in seconds.
DEFAULT_MAX_AGE = 7 * 24 * 3600.0


@attrs.frozen
class AdapterTarget:
    """One adapter of a run: its ``name`` (the adapter type unless ``[[adapters]] name`` renames it; it keys the
    outbox) and its settings."""

    name: str
    config: AdapterConfig

    def label(self) -> str:
        """``name`` alone when it is the type, else ``name (type)``: how warnings name the adapter."""
        return self.name if self.name == self.config.type else f"{self.name} ({self.config.type})"


@attrs.frozen
class NotificationSettings:
    """The adapters of a run and what surrounds them (``adapter.*``, ``[[adapters]]``); built and validated by the
    CLI (step 14). ``targets`` is non-empty, names unique, in the order they were selected."""

    targets: tuple[AdapterTarget, ...]
    outbox: bool = False
    notify_children: bool = False
    drain_on_run: bool = False
    max_age: float = DEFAULT_MAX_AGE

    @property
    def adapter(self) -> AdapterConfig:
        """The first adapter's settings (for callers that publish through one adapter)."""
        return self.targets[0].config

    @property
    def adapters(self) -> dict[str, AdapterConfig]:
        """Adapter name → settings, in selection order."""
        return {t.name: t.config for t in self.targets}


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
) -> dict[str, PublishResult]:
    """Publish the run's ``run_completed`` event to every adapter, concurrently and independently (and keep one
    outbox entry per adapter when enabled); warn for each failure.

    Returns adapter name → what happened, for callers that report it; the exit code is never affected.
    """
    from quarry_core.runtime import outbox

    event = build_run_completed_event(report, exit_code=exit_code)
    s = report.settings
    partition = RunPartition(s.source, s.category, report.day, s.run_id)
    box = outbox.Outbox.open(host, s.storage) if settings.outbox else None

    async def one(target: AdapterTarget) -> PublishResult:
        entry = outbox.new_entry(target.config, event, name=target.name)
        # the pending record first; if it cannot be written, warn and publish anyway
        recorded = box is not None and await box.append(partition, entry)
        try:
            result = await publish(host, target.config, event, cancel=cancel)
        except Exception as exc:  # never let one adapter's bug take the others down
            result = PublishResult(0, redact_text(f"{target.config.type}: {type(exc).__name__}: {exc}"))
        if not result.delivered:
            prefix = "" if target.name == target.config.type else f"{target.name}: "
            logger.warning("Warning: adapter notification failed: {}{}", prefix, result.error)
        if box is not None and recorded:
            await box.append(partition, entry.after(result))
        return result

    try:
        results = await asyncio.gather(*(one(t) for t in settings.targets))
    finally:
        if box is not None:
            await box.close()
    return {t.name: r for t, r in zip(settings.targets, results, strict=True)}


async def notify_after_run(report: RunReport, control: Any, host: PluginHost) -> dict[str, PublishResult] | None:
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
                settings.adapters,
                max_age=settings.max_age,
                limit=100,
                cancel=control.killed,
            )
        except Exception as exc:
            logger.warning(
                "Warning: outbox drain after the run failed: {}", redact_text(f"{type(exc).__name__}: {exc}")
            )
    return result
