"""The activities (CONTRACT_INTEGRATION §5): ``quarry.run`` executes one Quarry run in-process and
``quarry.notify`` publishes a ``RunCompletedEvent`` through the worker's notification adapter.

``quarry.run`` calls :func:`~quarry_core.runtime.run.execute_run` (lifecycle steps 2–13: no adapter, report,
summary or in-process fan-out), heartbeats ``{run_id, events_received, last_seq}`` while the run goes, and returns
a :class:`~quarry_temporal.models.QuarryActivityResult`. Outcomes map to Temporal:

- ``success`` → the result;
- ``script_error``, ``executor_crash`` → ``ApplicationError(type=<outcome>, non_retryable=False, details=[result])``;
- ``policy_failure``, ``version_mismatch`` → the same with ``non_retryable=True``;
- ``canceled`` → ``CancelledError`` (Temporal's cancellation arrives through a heartbeat and takes the SIGTERM
  path: the executor is stopped, the policy flushed, a ``canceled`` run record written);
- a run the worker cannot build (script not found on this worker, bad configuration) → ``ApplicationError(type=
  "config_error", non_retryable=True)``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger
from temporalio import activity
from temporalio.exceptions import ApplicationError

from quarry_core.errors import PluginError, QuarryError
from quarry_core.interfaces import StorageConfig
from quarry_core.notify import build_run_completed_event, events_partition_url
from quarry_core.outcomes import Outcome
from quarry_core.runtime.control import RunControl
from quarry_core.runtime.notifications import NotificationSettings, publish
from quarry_core.runtime.run import RunReport, execute_run
from quarry_temporal.models import ACTIVITY_NAME, NOTIFY_ACTIVITY_NAME, QuarryActivityInput, QuarryActivityResult
from quarry_temporal.observe import EnqueueCollector, ObservingHost
from quarry_temporal.settings import WorkerConfig, run_settings

__all__ = ["QuarryActivities", "cancel_run"]

_NON_RETRYABLE = {Outcome.POLICY_FAILURE, Outcome.VERSION_MISMATCH}


def cancel_run(control: RunControl) -> None:
    """Cancel a run the way a first SIGTERM does (CONTRACT_RUN §7): ``canceled`` outcome, exit 143."""
    if control.signal_name is None:
        control.signals = 1
        control.signal_name = signal.Signals.SIGTERM.name
        control.canceled.set()
    else:  # a second cancellation: stop the executor at once, as a second signal does
        control.killed.set()


class QuarryActivities:
    """The activities of one worker: its configuration and plugin host are shared by every run it executes."""

    def __init__(self, worker: WorkerConfig, host: ObservingHost, notification: NotificationSettings | None) -> None:
        self.worker = worker
        self.host = host
        self.notification = notification

    @activity.defn(name=ACTIVITY_NAME)
    async def run(self, inp: QuarryActivityInput) -> QuarryActivityResult:
        """Execute one run; see the module docstring for the outcome mapping."""
        try:
            settings = run_settings(self.worker, inp, self.host)
        except (QuarryError, PluginError) as exc:
            raise ApplicationError(str(exc), type="config_error", non_retryable=True) from None
        collector = EnqueueCollector(settings, collect=inp.collect_enqueues, budget=max(0, inp.enqueue_budget))
        control = RunControl()
        progress = self.host.watch(settings.run_id)
        interval = self.worker.temporal.heartbeat_interval
        timeout = activity.info().heartbeat_timeout
        if timeout is not None and timeout.total_seconds() > 0:
            interval = min(interval, timeout.total_seconds() / 3)
        logger.info("run {} (attempt {}) of {} started", settings.run_id, settings.attempt, settings.script)
        task = asyncio.create_task(execute_run(settings, self.host, control, on_enqueue=collector.on_enqueue))
        beats = asyncio.create_task(_heartbeat(progress.details, interval))
        try:
            report = await _until_done(task, control)
        except (QuarryError, PluginError) as exc:  # raised before the run wrote anything
            raise ApplicationError(str(exc), type="config_error", non_retryable=True) from None
        finally:
            beats.cancel()
            self.host.forget(settings.run_id)
        result = self._result(report, collector)
        logger.info("run {} ended: {} ({})", report.run_id, report.outcome.value, report.message)
        if report.outcome is Outcome.CANCELED:
            if activity.is_worker_shutdown():  # not the workflow's wish: let it retry the job elsewhere
                raise ApplicationError(
                    f"run {report.run_id} canceled by a worker shutdown",
                    dataclasses.asdict(result),
                    type="worker_lost",
                )
            raise asyncio.CancelledError(f"run {report.run_id} canceled")
        if report.outcome is Outcome.SUCCESS:
            return result
        raise ApplicationError(
            report.message,
            dataclasses.asdict(result),
            type=report.outcome.value,
            non_retryable=report.outcome in _NON_RETRYABLE,
        )

    def _result(self, report: RunReport, collector: EnqueueCollector) -> QuarryActivityResult:
        s = report.settings
        storage: StorageConfig = s.storage
        notification: dict[str, Any] | None = None
        if s.notification is not None and (not s.depth or s.notification.notify_children):
            notification = build_run_completed_event(report, exit_code=report.exit_code)
        return QuarryActivityResult(
            run_id=report.run_id,
            outcome=report.outcome.value,
            message=report.message,
            exit_code=report.exit_code,
            event_count=report.event_count,
            duration_ms=report.duration_ms,
            events_persisted=report.policy_stats.events_persisted,
            events_dropped=report.policy_stats.events_dropped,
            enqueued=list(collector.items),
            enqueue_skipped=collector.skipped_total,
            over_budget=list(collector.over_budget),
            enqueue_received=collector.received,
            enqueue_deduped=collector.deduped,
            enqueue_skipped_by_reason=dict(collector.skipped),
            dedup_key=collector.own_key,
            storage_path=events_partition_url(
                report.storage_root or storage.path,
                storage.dataset,
                source=s.source,
                category=s.category,
                day=report.day,
                run_id=s.run_id,
            ),
            attempt=s.attempt,
            parent_run_id=s.parent_run_id,
            notification=notification,
        )

    @activity.defn(name=NOTIFY_ACTIVITY_NAME)
    async def notify(self, event: Mapping[str, Any]) -> None:
        """Publish ``event`` through the worker's adapter; a failure raises so Temporal retries it (no outbox)."""
        if self.notification is None:
            raise ApplicationError(
                "this worker has no notification adapter (set [adapter] in its configuration)",
                type="config_error",
                non_retryable=True,
            )
        # every adapter of the worker, concurrently; a retry of this activity publishes to all of them again
        # (at-least-once: consumers deduplicate on notification_id)
        targets = self.notification.targets
        results = await asyncio.gather(*(publish(self.host, t.config, event) for t in targets))
        errors = [
            str(r.error) if t.name == t.config.type else f"{t.name}: {r.error}"
            for t, r in zip(targets, results, strict=True)
            if not r.delivered
        ]
        if errors:
            raise ApplicationError(f"adapter notification failed: {'; '.join(errors)}", type="notification_failed")


async def _heartbeat(details: Callable[[], dict[str, Any]], interval: float) -> None:
    while True:
        activity.heartbeat(details())
        await asyncio.sleep(interval)


async def _until_done(task: asyncio.Task[RunReport], control: RunControl) -> RunReport:
    """Await the run; a cancellation of the activity cancels the run (SIGTERM path) and still waits for its end,
    so the flush and the ``canceled`` run record happen before the activity reports back."""
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            logger.warning("Warning: activity canceled by Temporal; canceling the run")
            cancel_run(control)
