"""The workflows (CONTRACT_INTEGRATION §5): ``QuarryJobWorkflow`` retries a job as new runs with lineage,
``QuarryCrawlWorkflow`` applies local fan-out's rules (CONTRACT_RUN §4) across activities on every worker.

Deterministic code only: run ids come from ``workflow.uuid4()``, waits from ``workflow.sleep``; every run is a
``quarry.run`` activity with ``maximum_attempts=1`` (retries belong to the workflow, with lineage).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from quarry_core.crawl_report import fan_out_report
    from quarry_temporal.models import (
        ACTIVITY_NAME,
        NON_RETRYABLE,
        NOTIFY_ACTIVITY_NAME,
        RETRYABLE,
        AttemptResult,
        CrawlInput,
        CrawlResult,
        CrawlState,
        JobInput,
        JobResult,
        QuarryActivityInput,
        QuarryActivityResult,
        WorkItem,
        activity_result_from,
        job_result_from,
    )

__all__ = ["EXIT_CODES", "QuarryCrawlWorkflow", "QuarryJobWorkflow", "run_job"]

#: exit codes of the outcomes that are not run outcomes (a run's own code travels in its result)
EXIT_CODES = {"config_error": 4, "worker_lost": 2, "internal_error": 70}
_NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
_KNOWN = {*RETRYABLE, *NON_RETRYABLE, "success", "canceled"}
_SKIP_REASONS = ("depth_exceeded", "target_not_found", "invalid_partition", "max_runs_reached")


def _failure(err: ActivityError) -> tuple[str, str, int, QuarryActivityResult | None]:
    """``(outcome, message, exit code, result)`` of a failed ``quarry.run``."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        result = activity_result_from(cause.details[0]) if cause.details else None
        outcome = cause.type if cause.type in _KNOWN else "internal_error"
        if outcome == "internal_error":
            return outcome, f"{cause.type}: {cause.message}", 70, result
        code = EXIT_CODES.get(outcome, result.exit_code if result is not None else 70)
        return outcome, cause.message, code, result
    if isinstance(cause, CancelledError):  # canceled although the workflow did not ask: the worker went away
        return "worker_lost", f"activity canceled: {cause.message}", 2, None
    if isinstance(cause, TimeoutError):
        kind = cause.type.name.lower() if cause.type is not None else "unknown"
        return "worker_lost", f"activity timed out ({kind}): the worker stopped or was lost", 2, None
    return "internal_error", str(cause or err), 70, None


async def _notify(result: QuarryActivityResult | None) -> None:
    """``quarry.notify`` for a run whose worker configures an adapter; a failure only logs."""
    if result is None or result.notification is None:
        return
    try:
        await workflow.execute_activity(
            NOTIFY_ACTIVITY_NAME,
            result.notification,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_NOTIFY_RETRY,
        )
    except ActivityError as err:
        workflow.logger.warning("notification for run %s failed: %s", result.run_id, err.cause or err)


async def run_job(inp: JobInput) -> JobResult:
    """Run ``inp`` until it succeeds, fails for good, or ``max_attempts`` runs have been made.

    Attempt i runs with a new ``run_id``, ``attempt = i`` and ``parent_run_id`` = the previous run; a retryable
    failure (:data:`~quarry_temporal.models.RETRYABLE`) sleeps ``retry_initial_s × retry_backoff^(i−1)`` (capped
    at ``retry_max_s``) first.
    """
    opts = inp.activity
    attempts: list[AttemptResult] = []
    parent: str | None = None
    delay = inp.retry_initial_s
    max_attempts = max(1, inp.max_attempts)
    for attempt in range(1, max_attempts + 1):
        run_id = str(workflow.uuid4())
        act = QuarryActivityInput(
            script=inp.script,
            run_id=run_id,
            source=inp.source,
            job=inp.job,
            attempt=attempt,
            job_id=inp.job_id,
            parent_run_id=parent,
            spawned_by_run_id=inp.spawned_by_run_id,
            depth=inp.depth,
            root_run_id=inp.root_run_id,
            category=inp.category,
            policy=inp.policy,
            timeout_s=inp.timeout_s,
            collect_enqueues=inp.collect_enqueues,
            enqueue_budget=inp.enqueue_budget,
        )
        try:
            result = await workflow.execute_activity(
                ACTIVITY_NAME,
                act,
                result_type=QuarryActivityResult,
                start_to_close_timeout=timedelta(seconds=opts.start_to_close_s),
                heartbeat_timeout=timedelta(seconds=opts.heartbeat_timeout_s),
                schedule_to_start_timeout=timedelta(seconds=opts.schedule_to_start_s),
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary=f"attempt {attempt}: {inp.script}",
            )
        except ActivityError as err:
            if workflow.cancellation_reason() is not None:  # the workflow was canceled: so is the job
                raise asyncio.CancelledError(f"workflow canceled: {workflow.cancellation_reason()}") from err
            outcome, message, code, failed = _failure(err)
            attempts.append(AttemptResult(run_id, attempt, outcome, message, code, parent))
            await _notify(failed)
            if outcome not in RETRYABLE or attempt == max_attempts:
                return JobResult(outcome, code, run_id, attempts, failed)
            workflow.logger.info("run %s: %s; retrying as attempt %d", run_id, outcome, attempt + 1)
            await workflow.sleep(timedelta(seconds=min(delay, inp.retry_max_s)))
            delay *= inp.retry_backoff
            parent = run_id
            continue
        attempts.append(AttemptResult(run_id, attempt, result.outcome, result.message, result.exit_code, parent))
        await _notify(result)
        return JobResult(result.outcome, result.exit_code, run_id, attempts, result)
    raise AssertionError("unreachable")  # pragma: no cover


def _check_job(inp: JobInput) -> None:
    if inp.max_attempts < 1:
        raise ApplicationError("max_attempts must be >= 1", type="config_error", non_retryable=True)
    if inp.retry_initial_s < 0 or inp.retry_backoff < 1 or inp.retry_max_s < 0:
        raise ApplicationError(
            "retry_initial_s and retry_max_s must be >= 0, retry_backoff >= 1", type="config_error", non_retryable=True
        )


@workflow.defn(name="QuarryJobWorkflow")
class QuarryJobWorkflow:
    """One job, retried as new runs with lineage. Fails (``ApplicationError`` of the last outcome, details
    ``[JobResult]``) when the job does not succeed."""

    @workflow.run
    async def run(self, inp: JobInput) -> JobResult:
        _check_job(inp)
        res = await run_job(inp)
        if res.outcome != "success":
            last = res.attempts[-1]
            raise ApplicationError(
                f"job failed after {len(res.attempts)} attempt(s): {last.outcome}: {last.message}",
                dataclasses.asdict(res),
                type=res.outcome,
                non_retryable=True,
            )
        return res


def _summary(res: JobResult, depth: int) -> dict[str, Any]:
    """A finished child as the crawl's ``fan_out.children`` lists it."""
    return {
        "run_id": res.run_id,
        "outcome": res.outcome,
        "event_count": res.result.event_count if res.result is not None else 0,
        "duration_ms": res.result.duration_ms if res.result is not None else 0,
        "depth": depth,
        "attempts": len(res.attempts),
    }


@workflow.defn(name="QuarryCrawlWorkflow")
class QuarryCrawlWorkflow:
    """A fan-out crawl over activities: the same depth, ``max_runs``, dedup and counters as ``quarry run --depth``
    (CONTRACT_RUN §4), at most ``parallel`` runs at once, spread over every worker of the task queue.

    Each run below ``depth`` collects its ``enqueue`` events as work items (target check, partition check and
    in-run dedup on the worker, budget = the remaining ``max_runs``); the workflow applies the depth limit, the
    crawl-wide dedup (seeded with the root's key) and ``max_runs``. Children get attempt 1, the root's job id,
    ``spawned_by_run_id``, ``depth`` and ``root_run_id``, and the root job's retry settings. The result's exit code
    is the root run's.
    """

    def __init__(self) -> None:
        self.received = 0
        self.deduped = 0
        self.abandoned = 0
        self.scheduled = 0
        self.continued = 0
        self.skipped: dict[str, int] = dict.fromkeys(_SKIP_REASONS, 0)
        self.seen: set[str] = set()
        self.children: list[dict[str, Any]] = []
        self.queue: collections.deque[JobInput] = collections.deque()
        self.running = 0

    @workflow.query(name="progress")
    def progress(self) -> dict[str, Any]:
        """The fan-out counters so far, plus how many children are queued and running."""
        return {**self.fan_out(), "queued": len(self.queue), "running": self.running, "continued": self.continued}

    @workflow.run
    async def run(self, inp: CrawlInput) -> CrawlResult:
        if inp.depth < 1 or inp.max_runs < 1 or inp.parallel < 1:
            raise ApplicationError(
                "a crawl needs depth >= 1, max_runs >= 1 and parallel >= 1", type="config_error", non_retryable=True
            )
        _check_job(inp.root)
        if inp.state is not None:
            root = self._restore(inp.state)
        else:
            root_job = dataclasses.replace(inp.root, depth=0, collect_enqueues=True, enqueue_budget=inp.max_runs)
            root = await run_job(root_job)
            if root.result is not None and root.result.dedup_key:
                self.seen.add(root.result.dedup_key)
            self._absorb(inp, root_job, root, root.run_id)
        running: dict[asyncio.Task[JobResult], JobInput] = {}
        draining = False
        try:
            while self.queue or running:
                info = workflow.info()
                if info.get_current_history_length() > inp.continue_as_new_after or info.is_continue_as_new_suggested():
                    draining = True  # start nothing new; continue as new once the running children are done
                while self.queue and len(running) < inp.parallel and not draining:
                    child = self.queue.popleft()
                    remaining = max(0, inp.max_runs - self.scheduled)
                    child = dataclasses.replace(child, enqueue_budget=remaining if child.collect_enqueues else 0)
                    running[asyncio.ensure_future(self._child(inp, child))] = child
                self.running = len(running)
                if not running:
                    break
                done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    job = running.pop(task)
                    res = task.result()
                    self.children.append(_summary(res, job.depth))
                    self._absorb(inp, job, res, root.run_id)
                self.running = len(running)
        except asyncio.CancelledError:
            self.abandoned += len(self.queue)
            self.queue.clear()
            for task in running:
                task.cancel()
            raise
        if self.queue:
            workflow.continue_as_new(dataclasses.replace(inp, state=self._state(root)))
        return CrawlResult(root=root, exit_code=root.exit_code, fan_out=self.fan_out(), continued=self.continued)

    def _state(self, root: JobResult) -> CrawlState:
        slim = None if root.result is None else dataclasses.replace(root.result, enqueued=[], over_budget=[])
        return CrawlState(
            root=dataclasses.replace(root, result=slim),
            seen=sorted(self.seen),
            queue=list(self.queue),
            scheduled=self.scheduled,
            received=self.received,
            deduped=self.deduped,
            skipped=dict(self.skipped),
            children=list(self.children),
            continued=self.continued + 1,
        )

    def _restore(self, state: CrawlState) -> JobResult:
        self.seen = set(state.seen)
        self.queue = collections.deque(state.queue)
        self.scheduled = state.scheduled
        self.received = state.received
        self.deduped = state.deduped
        self.skipped = {**self.skipped, **state.skipped}
        self.children = list(state.children)
        self.continued = state.continued
        return state.root

    async def _child(self, inp: CrawlInput, job: JobInput) -> JobResult:
        if inp.max_runs <= inp.child_workflows_above:
            return await run_job(job)
        try:
            result: JobResult = await workflow.execute_child_workflow(
                QuarryJobWorkflow.run, job, id=f"{workflow.info().workflow_id}/child-{workflow.uuid4()}"
            )
            return result
        except ChildWorkflowError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.details:
                failed = job_result_from(cause.details[0])
                if failed is not None:
                    return failed
            if isinstance(cause, CancelledError):
                raise
            return JobResult("internal_error", 70, "", [], None)

    def _absorb(self, inp: CrawlInput, spawner: JobInput, res: JobResult, root_run_id: str) -> None:
        """Apply the crawl-wide rules to the work items of a finished run (its last attempt's)."""
        r = res.result
        if r is None:
            return
        self.received += r.enqueue_received
        self.deduped += r.enqueue_deduped
        for reason, count in r.enqueue_skipped_by_reason.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        if spawner.depth + 1 > inp.depth:
            self.skipped["depth_exceeded"] += r.enqueue_received
            return
        for item in r.enqueued:
            self._enqueue(inp, spawner, r, item, root_run_id)
        for key in r.over_budget:
            if key in self.seen:
                self.deduped += 1
            else:
                self.skipped["max_runs_reached"] += 1

    def _enqueue(
        self, inp: CrawlInput, spawner: JobInput, r: QuarryActivityResult, item: WorkItem, root_run_id: str
    ) -> None:
        if item.dedup_key in self.seen:
            self.deduped += 1
            return
        if self.scheduled >= inp.max_runs:
            self.skipped["max_runs_reached"] += 1
            return
        self.seen.add(item.dedup_key)
        self.scheduled += 1
        depth = spawner.depth + 1
        root = inp.root
        self.queue.append(
            JobInput(
                script=item.target,
                source=item.source or spawner.source,
                job=dict(item.params),
                job_id=root.job_id,
                category=item.category or spawner.category,
                policy=root.policy,
                timeout_s=root.timeout_s,
                max_attempts=root.max_attempts,
                retry_initial_s=root.retry_initial_s,
                retry_backoff=root.retry_backoff,
                retry_max_s=root.retry_max_s,
                activity=root.activity,
                spawned_by_run_id=r.run_id,
                depth=depth,
                root_run_id=root_run_id,
                collect_enqueues=depth < inp.depth,
            )
        )

    def fan_out(self) -> dict[str, Any]:
        """The counters of ``quarry run``'s report ``fan_out`` object, over the whole crawl."""
        return fan_out_report(
            self.children,
            received=self.received,
            deduped=self.deduped,
            skipped=self.skipped,
            abandoned=self.abandoned,
        )
