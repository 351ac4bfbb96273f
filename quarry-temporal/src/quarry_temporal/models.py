"""What crosses Temporal (CONTRACT_INTEGRATION §5): small dataclasses, no secrets, no event payloads.

Storage, policy settings, proxies and sinks come from the worker's own configuration; a workflow only names the
script, the job, the lineage and the partition. This module imports nothing but the standard library, so the
workflow sandbox can load it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "ACTIVITY_NAME",
    "NON_RETRYABLE",
    "NOTIFY_ACTIVITY_NAME",
    "RETRYABLE",
    "ActivityOptions",
    "AttemptResult",
    "CrawlInput",
    "CrawlResult",
    "CrawlState",
    "JobInput",
    "JobResult",
    "QuarryActivityInput",
    "QuarryActivityResult",
    "WorkItem",
    "activity_result_from",
    "job_result_from",
]

#: the activities' registered names
ACTIVITY_NAME = "quarry.run"
NOTIFY_ACTIVITY_NAME = "quarry.notify"
#: outcomes a workflow retries as a new run (``attempt + 1``, ``parent_run_id``); ``worker_lost`` is an activity
#: that timed out (its worker died or stopped heartbeating)
RETRYABLE = ("script_error", "executor_crash", "worker_lost")
#: outcomes that end the job at once (``config_error``: the worker could not build the run, exit 4)
NON_RETRYABLE = ("policy_failure", "version_mismatch", "config_error")


@dataclass
class WorkItem:
    """One ``enqueue`` a run collected: the target resolved on the worker, the params and the dedup key."""

    target: str
    params: dict[str, Any] = field(default_factory=dict)
    dedup_key: str = ""
    source: str | None = None
    category: str | None = None


@dataclass
class QuarryActivityInput:
    """One run: ``quarry.run``'s argument."""

    script: str
    run_id: str
    source: str
    job: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    job_id: str | None = None
    parent_run_id: str | None = None
    spawned_by_run_id: str | None = None
    depth: int = 0
    root_run_id: str | None = None
    category: str | None = None
    #: an ingestion policy name; its settings come from the worker's configuration
    policy: str | None = None
    timeout_s: float | None = None
    #: turn ``enqueue`` events into :class:`WorkItem`s (crawl runs below the crawl's depth)
    collect_enqueues: bool = False
    #: at most this many work items (the crawl's remaining ``max_runs``); the rest is counted skipped
    enqueue_budget: int = 0


@dataclass
class QuarryActivityResult:
    """What one run reports back: identity, outcome, counts, where its events are. Never the events."""

    run_id: str
    outcome: str
    message: str
    exit_code: int
    event_count: int = 0
    duration_ms: int = 0
    events_persisted: int = 0
    events_dropped: int = 0
    enqueued: list[WorkItem] = field(default_factory=list)
    enqueue_skipped: int = 0
    #: dedup keys of the work items beyond ``enqueue_budget`` (the workflow counts them deduped or skipped)
    over_budget: list[str] = field(default_factory=list)
    #: beyond the spec's list: everything the crawl needs to keep local fan-out's counters
    enqueue_received: int = 0
    enqueue_deduped: int = 0
    enqueue_skipped_by_reason: dict[str, int] = field(default_factory=dict)
    #: this run's own dedup key (seeds a crawl's dedup set with the root)
    dedup_key: str = ""
    storage_path: str = ""
    attempt: int = 1
    parent_run_id: str | None = None
    #: the ``RunCompletedEvent`` when the worker configures an adapter (the workflow runs ``quarry.notify``)
    notification: dict[str, Any] | None = None


@dataclass
class ActivityOptions:
    """Timeouts of every ``quarry.run`` activity a workflow starts (seconds; spec recommendations)."""

    start_to_close_s: float = 4 * 3600.0
    heartbeat_timeout_s: float = 60.0
    schedule_to_start_s: float = 300.0


@dataclass
class JobInput:
    """``QuarryJobWorkflow``: one job, retried as new runs with lineage."""

    script: str
    source: str
    job: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    category: str | None = None
    policy: str | None = None
    timeout_s: float | None = None
    max_attempts: int = 3
    retry_initial_s: float = 5.0
    retry_backoff: float = 2.0
    retry_max_s: float = 300.0
    activity: ActivityOptions = field(default_factory=ActivityOptions)
    #: crawl children: lineage and enqueue collection (a plain job leaves these alone)
    spawned_by_run_id: str | None = None
    depth: int = 0
    root_run_id: str | None = None
    collect_enqueues: bool = False
    enqueue_budget: int = 0


@dataclass
class AttemptResult:
    """One attempt of a job: its run, its lineage and how it ended."""

    run_id: str
    attempt: int
    outcome: str
    message: str
    exit_code: int
    parent_run_id: str | None = None


@dataclass
class JobResult:
    """A job's end: the last attempt's run result plus every attempt, in order."""

    outcome: str
    exit_code: int
    run_id: str
    attempts: list[AttemptResult] = field(default_factory=list)
    result: QuarryActivityResult | None = None


@dataclass
class CrawlInput:
    """``QuarryCrawlWorkflow``: the root job and local fan-out's limits (``--depth``, ``--max-runs``,
    ``--parallel``)."""

    root: JobInput
    depth: int
    max_runs: int
    parallel: int = 1
    #: with more ``max_runs`` than this, children run as child ``QuarryJobWorkflow``s instead of activities
    child_workflows_above: int = 500
    #: past this many history events (or when Temporal suggests it) the crawl lets its running children finish and
    #: continues as new, carrying :class:`CrawlState`
    continue_as_new_after: int = 10_000
    #: set by the crawl itself when it continues as new
    state: CrawlState | None = None


@dataclass
class CrawlState:
    """What a crawl carries across continue-as-new: the root, the dedup set, the queue and the counters."""

    root: JobResult
    seen: list[str] = field(default_factory=list)
    queue: list[JobInput] = field(default_factory=list)
    scheduled: int = 0
    received: int = 0
    deduped: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    children: list[dict[str, Any]] = field(default_factory=list)
    continued: int = 0


@dataclass
class CrawlResult:
    """The crawl: the root's job result, the fan-out counters (as in ``quarry run``'s report, ``children`` as
    summaries) and the exit code of the root run."""

    root: JobResult
    exit_code: int
    fan_out: dict[str, Any] = field(default_factory=dict)
    #: how many times the crawl continued as new
    continued: int = 0


def activity_result_from(value: Any) -> QuarryActivityResult | None:
    """A :class:`QuarryActivityResult` from what a failure's details hold (a JSON object), or ``None``."""
    if isinstance(value, QuarryActivityResult):
        return value
    if not isinstance(value, dict):
        return None
    known = {f.name for f in fields(QuarryActivityResult)}
    data = {k: v for k, v in value.items() if k in known}
    data["enqueued"] = [WorkItem(**item) if isinstance(item, dict) else item for item in data.get("enqueued") or []]
    try:
        return QuarryActivityResult(**data)
    except TypeError:
        return None


def job_result_from(value: Any) -> JobResult | None:
    """A :class:`JobResult` from what a failed ``QuarryJobWorkflow``'s details hold, or ``None``."""
    if isinstance(value, JobResult):
        return value
    if not isinstance(value, dict):
        return None
    try:
        return JobResult(
            outcome=value["outcome"],
            exit_code=value["exit_code"],
            run_id=value["run_id"],
            attempts=[AttemptResult(**a) for a in value.get("attempts") or []],
            result=activity_result_from(value.get("result")),
        )
    except (KeyError, TypeError):
        return None
