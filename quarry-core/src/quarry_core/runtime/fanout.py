"""Fan-out (CONTRACT_RUN §4): ``enqueue`` events become child runs with lineage, dedup, caps and parallelism.

:func:`execute_crawl` drives :func:`~quarry_core.runtime.run.execute_run` for the root and every child in this
process. Each ingested ``enqueue`` reaches :meth:`Crawl.on_enqueue` before the policy, counts
``enqueue_received``, and the first matching rule wins:

1. the child would be deeper than ``depth`` → skipped ``depth_exceeded``;
2. ``target`` (resolved against the working directory with ``os.path.realpath``) is not a file → skipped
   ``target_not_found`` with a warning;
3. a ``source``/``category`` override that is not a valid partition value → skipped ``invalid_partition``
   with a warning;
4. the dedup key (SHA-256 of ``resolved_target`` ‖ 0x00 ‖ canonical JSON of ``params``) was seen before in the
   crawl (the root's own key is seeded) → ``enqueue_deduped``;
5. ``max_runs`` children already scheduled → skipped ``max_runs_reached``;
6. after a cancel signal → ``enqueue_abandoned``;
7. otherwise queued.

At most ``parallel`` children run at once (the root aside; a child stops counting when it hands its executor
back, while its final flush and records are still being written), on warm executors from an
:class:`~quarry_core.runtime.pool.ExecutorPool` unless ``warm_executors`` is off. The crawl is done when the
root has finished, the queue is empty and no child runs; the root's final run record and report then carry the
fan-out counters. The invocation's exit code is the root's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from loguru import logger

from quarry_core.crawl_report import fan_out_report
from quarry_core.interfaces import ExecutorConfig
from quarry_core.outcomes import Outcome
from quarry_core.partitions import partition_value_error
from quarry_core.plugins import PluginHost
from quarry_core.protocol.frames import Event
from quarry_core.runtime.browser import BrowserEndpointError, provision_browser
from quarry_core.runtime.control import RunControl
from quarry_core.runtime.pool import DEFAULT_EXECUTOR_RECYCLE_AFTER, ExecutorPool, LimitedPool, PoolTurn
from quarry_core.runtime.run import RunReport, RunSettings, execute_run

__all__ = [
    "DEFAULT_EXECUTOR_RECYCLE_AFTER",
    "ISOLATION_LEVELS",
    "SKIP_REASONS",
    "AdmittedEnqueue",
    "ChildSummary",
    "Crawl",
    "CrawlProgress",
    "FanoutSettings",
    "admit_enqueue",
    "dedup_key",
    "execute_crawl",
]

#: how warm runs share the browser: ``context`` = a fresh context and page per run (default); ``page`` = one
#: pooled page per executor process, reused by its runs (cookies, storage and page state carry over)
ISOLATION_LEVELS = ("context", "page")

#: seconds a run waits for a busy warm executor to come back before the pool starts one more process
POOL_LAUNCH_GRACE = 0.5

#: why an ``enqueue`` did not become a child, in rule order
SKIP_REASONS = ("depth_exceeded", "target_not_found", "invalid_partition", "max_runs_reached")


@attrs.frozen
class FanoutSettings:
    """``--depth`` (> 0 enables fan-out), ``--max-runs`` (children cap), ``--parallel`` (running children)."""

    depth: int
    max_runs: int
    parallel: int = 1
    warm_executors: bool = True
    executor_recycle_after: int = DEFAULT_EXECUTOR_RECYCLE_AFTER
    isolation: str = "context"

    def __attrs_post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError("fan-out needs depth >= 1")
        if self.max_runs < 1:
            raise ValueError("fan-out needs max_runs >= 1")
        if self.parallel < 1:
            raise ValueError("parallel must be >= 1")
        if self.executor_recycle_after < 1:
            raise ValueError("executor_recycle_after must be >= 1")
        if self.isolation not in ISOLATION_LEVELS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_LEVELS)}")


@attrs.frozen
class ChildSummary:
    """One finished child run, as the report and the stdout summary list it."""

    run_id: str
    outcome: str
    event_count: int
    duration_ms: int
    depth: int
    spawned_by_run_id: str
    events_persisted: int = 0
    events_dropped: int = 0

    def to_report(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "outcome": self.outcome,
            "event_count": self.event_count,
            "duration_ms": self.duration_ms,
            "depth": self.depth,
        }


@attrs.frozen
class CrawlProgress:
    """A snapshot of a crawl for progress displays: finished children, queue, throughput, drops."""

    done: int
    failed: int
    running: int
    queued: int
    events_persisted: int
    events_dropped: int
    elapsed: float
    finished: bool = False

    @property
    def events_per_s(self) -> float:
        return self.events_persisted / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"fan-out: {self.done} done ({self.failed} failed), {self.running} running, {self.queued} queued"
            f" | {self.events_per_s:.1f} events/s | {self.events_dropped} dropped | {self.elapsed:.0f}s"
        )


def dedup_key(resolved_target: str, params: Mapping[str, Any]) -> str:
    """Hex SHA-256 of ``resolved_target`` ‖ 0x00 ‖ canonical JSON of ``params`` (CONTRACT_RUN §4 rule 3)."""
    canonical = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = hashlib.sha256(resolved_target.encode("utf-8"))
    h.update(b"\x00")
    h.update(canonical.encode("utf-8"))
    return h.hexdigest()


@attrs.frozen
class AdmittedEnqueue:
    """An ``enqueue`` that passed the target and partition rules: what a child run needs, and its dedup key."""

    target: str  #: the resolved script path
    params: dict[str, Any]
    key: str  #: :func:`dedup_key` of ``target`` and ``params``
    source_override: str | None
    category_override: str | None


def admit_enqueue(payload: Mapping[str, Any], spawner: RunSettings, cwd: str) -> AdmittedEnqueue | str:
    """Rules 2 and 3 of the module docstring, shared by local fan-out and orchestrators (Temporal): resolve the
    target against ``cwd``, check the ``source``/``category`` overrides (else the spawner's values), compute the
    dedup key. Returns the admitted enqueue, or the skip reason (``target_not_found``, ``invalid_partition``)
    after logging a warning."""
    target = str(payload.get("target") or "")
    params: dict[str, Any] = dict(payload.get("params") or {})
    resolved = os.path.realpath(os.path.join(cwd, target))
    if not target or not os.path.isfile(resolved):
        logger.warning("Warning: enqueue target not found, skipped: {} (resolved to {})", target, resolved)
        return "target_not_found"
    overrides = {key: payload.get(key) or None for key in ("source", "category")}
    for key in ("source", "category"):
        err = partition_value_error(key, overrides[key] or getattr(spawner, key))
        if err:
            logger.warning("Warning: enqueue {} override rejected, skipped: {}", key, err)
            return "invalid_partition"
    return AdmittedEnqueue(resolved, params, dedup_key(resolved, params), overrides["source"], overrides["category"])


class Crawl:
    """One fan-out crawl: the root, the queue of children, the counters."""

    def __init__(
        self,
        root: RunSettings,
        host: PluginHost,
        control: RunControl,
        fanout: FanoutSettings,
        *,
        cwd: str | None = None,
    ) -> None:
        self.root = attrs.evolve(root, root_run_id=root.root_run_id or root.run_id)
        self.host = host
        self.control = control
        self.fanout = fanout
        self.cwd = cwd or os.getcwd()
        self.seen: set[str] = {dedup_key(os.path.realpath(self.root.script), self.root.job)}
        self.queue: collections.deque[RunSettings] = collections.deque()
        self.scheduled = 0
        self.received = 0
        self.deduped = 0
        self.abandoned = 0
        self.abandoned_started = 0  # scheduled, then abandoned from the queue
        self.skipped: dict[str, int] = dict.fromkeys(SKIP_REASONS, 0)
        self.children: list[ChildSummary] = []
        self.active = 0  # children holding (or waiting for) an executor
        self.pool: ExecutorPool | None = None
        self.child_pool: LimitedPool | None = None
        self._wake = asyncio.Event()
        self._started = time.monotonic()
        self._root_done = False
        self._scheduler: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ enqueue rules

    def _skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    async def on_enqueue(self, spawner: RunSettings, event: Event) -> None:
        """Apply the rules to one ``enqueue`` of ``spawner`` (called before the policy sees the event)."""
        self.decide(spawner, event)

    def decide(self, spawner: RunSettings, event: Event) -> None:
        """The rules of the module docstring, in order; a queued child wakes the scheduler."""
        self.received += 1
        depth = spawner.depth + 1
        if depth > self.fanout.depth:
            self._skip("depth_exceeded")
            return
        admitted = admit_enqueue(event.payload, spawner, self.cwd)
        if isinstance(admitted, str):
            self._skip(admitted)
            return
        resolved, params, key = admitted.target, admitted.params, admitted.key
        source = admitted.source_override or spawner.source
        category = admitted.category_override or spawner.category
        if key in self.seen:
            self.deduped += 1
            return
        if self.scheduled >= self.fanout.max_runs:
            self._skip("max_runs_reached")
            return
        self.seen.add(key)
        if self.control.canceled.is_set():
            self.abandoned += 1
            return
        self.scheduled += 1
        self.queue.append(
            attrs.evolve(
                spawner,
                script=resolved,
                run_id=str(uuid.uuid4()),
                job=dict(params),
                attempt=1,
                parent_run_id=None,
                job_id=self.root.job_id,
                spawned_by_run_id=spawner.run_id,
                depth=depth,
                root_run_id=self.root.root_run_id,
                source=source,
                category=category,
            )
        )
        self._wake.set()

    # ------------------------------------------------------------------ scheduling

    async def _child(self, settings: RunSettings, turn: PoolTurn | None) -> ChildSummary:
        freed = False

        def executor_done() -> None:  # the slot frees when the executor does; records may still be written
            nonlocal freed
            if not freed:
                freed = True
                self.active -= 1
                self._wake.set()

        try:
            report = await execute_run(
                settings,
                self.host,
                self.control,
                on_enqueue=self.on_enqueue,
                pool=turn,
                executor_done=executor_done,
            )
        except Exception as exc:  # e.g. storage that cannot open this partition: only this child fails
            logger.error("child run {} failed before it started: {}: {}", settings.run_id, type(exc).__name__, exc)
            return ChildSummary(settings.run_id, Outcome.EXECUTOR_CRASH.value, 0, 0, settings.depth, "")
        finally:
            if turn is not None:
                turn.end()
            executor_done()
        if settings.notification is not None and settings.notification.notify_children:
            from quarry_core.runtime.notifications import notify_after_run

            await notify_after_run(report, self.control, self.host)  # never raises (adapter.notify_children)
        return ChildSummary(
            run_id=report.run_id,
            outcome=report.outcome.value,
            event_count=report.event_count,
            duration_ms=report.duration_ms,
            depth=settings.depth,
            spawned_by_run_id=settings.spawned_by_run_id or "",
            events_persisted=report.policy_stats.events_persisted,
            events_dropped=report.policy_stats.events_dropped,
        )

    async def _schedule(self) -> None:
        running: set[asyncio.Task[ChildSummary]] = set()
        canceled = asyncio.create_task(self.control.canceled.wait())
        try:
            while True:
                if self.control.canceled.is_set() and self.queue:
                    self.abandoned += len(self.queue)
                    self.abandoned_started += len(self.queue)
                    self.queue.clear()
                # twice ``parallel`` in flight: half may do their setup (policy, storage, running record)
                # while the other half hold executors (a warm pool lends at most ``parallel`` to children)
                limit = self.fanout.parallel * (2 if self.child_pool is not None else 1)
                while self.queue and self.active < limit:
                    self.active += 1
                    # children get executors in queue order, whichever finishes its setup first
                    turn = self.child_pool.turn() if self.child_pool is not None else None
                    running.add(asyncio.create_task(self._child(self.queue.popleft(), turn)))
                if self._root_done and not self.queue and not running:
                    return
                self._wake.clear()
                wake = asyncio.create_task(self._wake.wait())
                waiters: set[asyncio.Future[Any]] = {*running, wake}
                if not canceled.done():
                    waiters.add(canceled)
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                for task in done:
                    if task in running:
                        running.discard(task)  # type: ignore[arg-type]
                        self.children.append(task.result())
        finally:
            canceled.cancel()
            for task in running:
                task.cancel()

    async def _finish_children(self) -> Mapping[str, Any]:
        """Called by the root after its own run: wait for every child, return the fan-out counters."""
        self._root_done = True
        self._wake.set()
        assert self._scheduler is not None
        await self._scheduler
        return self.fan_out()

    def progress(self, *, finished: bool = False) -> CrawlProgress:
        done = len(self.children)
        return CrawlProgress(
            done=done,
            failed=sum(1 for c in self.children if c.outcome != Outcome.SUCCESS.value),
            running=self.scheduled - done - len(self.queue) - self.abandoned_started,
            queued=len(self.queue),
            events_persisted=sum(c.events_persisted for c in self.children),
            events_dropped=sum(c.events_dropped for c in self.children),
            elapsed=time.monotonic() - self._started,
            finished=finished,
        )

    async def _report_progress(self, on_progress: Callable[[CrawlProgress], None], interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                on_progress(self.progress())

    def fan_out(self) -> dict[str, Any]:
        """The report's ``fan_out`` object (also the source of the root record's counters)."""
        return fan_out_report(
            [c.to_report() for c in self.children],
            received=self.received,
            deduped=self.deduped,
            skipped=self.skipped,
            abandoned=self.abandoned,
        )

    async def run(
        self, on_progress: Callable[[CrawlProgress], None] | None = None, progress_interval: float = 1.0
    ) -> RunReport:
        """Run the root and every child; return the root's report (with ``fan_out``). ``on_progress`` gets a
        snapshot every ``progress_interval`` seconds and a final one (``finished``)."""
        s = self.root
        if self.fanout.warm_executors:
            # warm processes keep a browser each: sharing the reuse server over CDP measured 1.2-1.6x slower
            # (CONTRACT_RUN §4.1); an explicit endpoint is still honoured
            s = attrs.evolve(s, browser_reuse=False)
        with contextlib.suppress(BrowserEndpointError):  # unreachable: the root's execute_run ends it a crash
            s = self.root = await provision_browser(s, self.host)  # once per crawl; children inherit it
        if self.fanout.warm_executors:
            pool_env = {"QUARRY_ISOLATION": self.fanout.isolation}
            if s.browser_ws_endpoint and s.browser_provisioned:
                pool_env["QUARRY_BROWSER_ENDPOINT"] = s.browser_ws_endpoint  # warm processes attach while idle
            self.pool = ExecutorPool(
                self.host,
                s.executor,
                ExecutorConfig(python=s.executor_python, resolve_from=s.resolve_from),
                size=self.fanout.parallel + 1,
                recycle_after=self.fanout.executor_recycle_after,
                env=pool_env,
                launch_grace=POOL_LAUNCH_GRACE,
            )
            # the root and parallel - 1 children start at once; the last child's executor is usually the root's,
            # handed back when the root ends (the pool waits POOL_LAUNCH_GRACE for it before starting another)
            self.pool.prewarm(max(1, min(self.fanout.parallel, self.fanout.max_runs)))
            self.child_pool = LimitedPool(self.pool, self.fanout.parallel)
        self._scheduler = asyncio.create_task(self._schedule())
        ticker = None
        if on_progress is not None:
            ticker = asyncio.create_task(self._report_progress(on_progress, progress_interval))
        try:
            return await execute_run(
                s, self.host, self.control, on_enqueue=self.on_enqueue, pool=self.pool, fan_out=self._finish_children
            )
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            if on_progress is not None:
                with contextlib.suppress(Exception):
                    on_progress(self.progress(finished=True))
            if not self._scheduler.done():
                self._scheduler.cancel()
                await asyncio.gather(self._scheduler, return_exceptions=True)
            if self.pool is not None:
                if self.control.killed.is_set():
                    self.pool.kill_all()
                await self.pool.close()


async def execute_crawl(
    root: RunSettings,
    host: PluginHost,
    control: RunControl | None,
    fanout: FanoutSettings,
    *,
    on_progress: Callable[[CrawlProgress], None] | None = None,
    progress_interval: float = 1.0,
) -> RunReport:
    """Run ``root`` with fan-out; the returned report is the root's, with ``fan_out`` set."""
    crawl = Crawl(root, host, control or RunControl(), fanout)
    return await crawl.run(on_progress, progress_interval)
