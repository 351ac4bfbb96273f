"""``quarry temporal submit SCRIPT``: start a ``QuarryJobWorkflow`` (or, with ``--depth``, a
``QuarryCrawlWorkflow``) on a task queue; with ``--wait`` print the result as JSON and exit with the root run's
exit code. Mounted under ``quarry`` through the ``quarry_cli_commands`` hook (:mod:`quarry_temporal.hooks`).

Options resolve like ``quarry run``'s (command line > ``QUARRY_*`` environment > config file): ``source``,
``category``, ``policy.name``, ``timeout``, ``fanout.depth``, ``fanout.max_runs``, ``fanout.parallel`` and the
``[temporal]`` keys. Storage and secrets are the workers' business and are not options here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from quarry_core.outcomes import ExitCode
from quarry_temporal.options import AddressOpt, ConfigOpt, NamespaceOpt, NoConfigOpt, TaskQueueOpt, exit_now

__all__ = ["submit", "temporal_app"]

_RUN = "Run"
_RETRY = "Retries and timeouts"
_FANOUT = "Fan-out"

temporal_app = typer.Typer(
    name="temporal",
    help="Run Quarry jobs and crawls on Temporal (workers: quarry-temporal-worker).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _Usage(Exception):
    """A usage or configuration error: exit 4, nothing started."""


@temporal_app.command("submit")
def submit(
    script: Annotated[
        Path, typer.Argument(metavar="SCRIPT", help="The script (the same path must exist on the workers).")
    ],
    job: Annotated[str | None, typer.Option("--job", help="Job as a JSON object.", rich_help_panel=_RUN)] = None,
    job_json: Annotated[
        Path | None, typer.Option("--job-json", help="File holding one JSON object.", rich_help_panel=_RUN)
    ] = None,
    job_id: Annotated[
        str | None, typer.Option("--job-id", help="Job id shared by retries and children.", rich_help_panel=_RUN)
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Source partition (default: script stem).", rich_help_panel=_RUN)
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Category partition.", rich_help_panel=_RUN)
    ] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="Ingestion policy (settings: the workers').", rich_help_panel=_RUN)
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Bound each run (0 = none), e.g. 5m.", rich_help_panel=_RUN)
    ] = None,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", help="Runs per job before giving up.", rich_help_panel=_RETRY)
    ] = 3,
    retry_initial: Annotated[
        str, typer.Option("--retry-initial", help="Wait before the first retry.", rich_help_panel=_RETRY)
    ] = "5s",
    retry_backoff: Annotated[
        float, typer.Option("--retry-backoff", help="Multiplier per retry.", rich_help_panel=_RETRY)
    ] = 2.0,
    retry_max: Annotated[
        str, typer.Option("--retry-max", help="Longest wait between retries.", rich_help_panel=_RETRY)
    ] = "5m",
    heartbeat_timeout: Annotated[
        str,
        typer.Option(
            "--heartbeat-timeout", help="A run whose worker is silent this long is retried.", rich_help_panel=_RETRY
        ),
    ] = "60s",
    start_to_close: Annotated[
        str, typer.Option("--start-to-close", help="Longest run.", rich_help_panel=_RETRY)
    ] = "4h",
    depth: Annotated[
        int | None, typer.Option("--depth", help="Fan-out depth (0 = a plain job).", rich_help_panel=_FANOUT)
    ] = None,
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", help="Most child runs (required with --depth).", rich_help_panel=_FANOUT)
    ] = None,
    parallel: Annotated[
        int | None, typer.Option("--parallel", help="Child runs at once.", rich_help_panel=_FANOUT)
    ] = None,
    workflow_id: Annotated[
        str | None, typer.Option("--workflow-id", help="Workflow id (default: quarry-<uuid>).")
    ] = None,
    address: AddressOpt = None,
    namespace: NamespaceOpt = None,
    task_queue: TaskQueueOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait, print the result as JSON, exit with the root run's code.")
    ] = False,
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
) -> int:
    """Start a job (or, with --depth, a crawl) on Temporal."""
    from quarry_core.errors import ConfigError

    try:
        workflow, arg, temporal = _build(
            script=script,
            job=job,
            job_json=job_json,
            job_id=job_id,
            params={
                "source": source,
                "category": category,
                "policy": policy,
                "timeout": timeout,
                "depth": depth,
                "max_runs": max_runs,
                "parallel": parallel,
                "config": config,
                "no_config": no_config or None,
            },
            retry={
                "max_attempts": max_attempts,
                "retry_initial": retry_initial,
                "retry_backoff": retry_backoff,
                "retry_max": retry_max,
                "heartbeat_timeout": heartbeat_timeout,
                "start_to_close": start_to_close,
            },
            temporal={"address": address, "namespace": namespace, "task_queue": task_queue},
        )
    except (ConfigError, _Usage) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return int(ExitCode.USAGE)
    wf_id = workflow_id or f"quarry-{uuid.uuid4()}"
    code = asyncio.run(_submit(workflow, arg, temporal, wf_id, wait=wait))
    exit_now(code)  # a Temporal client was created: skip interpreter finalization (see exit_now)
    return code


def _duration(flag: str, text: str) -> float:
    from quarry_core.errors import ConfigError
    from quarry_core.units import parse_duration

    try:
        value = float(parse_duration(text))
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    if value < 0:
        raise ConfigError(f"{flag} must be >= 0")
    return value


def _parse_job(job: str | None, job_json: Path | None) -> dict[str, Any]:
    if job is not None and job_json is not None:
        raise _Usage("cannot use both --job and --job-json")
    if job_json is not None:
        if not job_json.is_file():
            raise _Usage(f"job file not found: {job_json}")
        text, what = job_json.read_text(encoding="utf-8"), f"job file {job_json}"
    elif job is not None:
        text, what = job, "--job"
    else:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Usage(f"malformed JSON in {what}: {exc}") from None
    if not isinstance(value, dict):
        raise _Usage(f"job must be a JSON object, got {type(value).__name__}")
    return value


def _build(
    *,
    script: Path,
    job: str | None,
    job_json: Path | None,
    job_id: str | None,
    params: dict[str, Any],
    retry: dict[str, Any],
    temporal: dict[str, Any],
) -> tuple[str, Any, Any]:
    """Validate everything before connecting: ``(workflow name, its input, TemporalSettings)``."""
    from quarry_core.cli.run_options import RunOptions, fanout_settings, resolve_options
    from quarry_core.partitions import partition_value_error
    from quarry_temporal.models import ActivityOptions, CrawlInput, JobInput
    from quarry_temporal.settings import resolve_temporal

    opts = resolve_options(RunOptions.from_cli(**params))
    cfg = opts.config
    if not script.is_file():
        raise _Usage(f"script not found: {script}")
    source = cfg.get("source") if cfg.get("source") is not None else script.stem
    category = cfg.get("category")
    for key, value in (("source", source), ("category", category), ("job_id", job_id)):
        if value is not None:
            err = partition_value_error(key, value)
            if err:
                raise _Usage(f"invalid --{key.replace('_', '-')}: {err}")
    if retry["max_attempts"] < 1:
        raise _Usage("--max-attempts must be >= 1")
    if retry["retry_backoff"] < 1:
        raise _Usage("--retry-backoff must be >= 1")
    heartbeat = _duration("--heartbeat-timeout", retry["heartbeat_timeout"])
    start_to_close = _duration("--start-to-close", retry["start_to_close"])
    if heartbeat <= 0 or start_to_close <= 0:
        raise _Usage("--heartbeat-timeout and --start-to-close must be > 0")
    timeout = cfg.get("timeout")
    root = JobInput(
        script=str(script.resolve()),
        source=source,
        job=_parse_job(job, job_json),
        job_id=job_id,
        category=category,
        policy=cfg.get("policy.name"),
        timeout_s=float(timeout) if timeout is not None else None,
        max_attempts=retry["max_attempts"],
        retry_initial_s=_duration("--retry-initial", retry["retry_initial"]),
        retry_backoff=float(retry["retry_backoff"]),
        retry_max_s=_duration("--retry-max", retry["retry_max"]),
        activity=ActivityOptions(start_to_close_s=start_to_close, heartbeat_timeout_s=heartbeat),
    )
    t = resolve_temporal(cfg, temporal)
    fanout = fanout_settings(cfg)
    if fanout is None:
        return "QuarryJobWorkflow", root, t
    return "QuarryCrawlWorkflow", CrawlInput(root, fanout.depth, fanout.max_runs, fanout.parallel), t


async def _submit(workflow: str, arg: Any, t: Any, wf_id: str, *, wait: bool) -> int:
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    from quarry_temporal.models import CrawlResult, JobResult, job_result_from

    try:
        client = await Client.connect(t.address, namespace=t.namespace)
    except Exception as exc:
        sys.stderr.write(
            f"Error: cannot connect to Temporal at {t.address}: {exc} (start a server or pass --address)\n"
        )
        return int(ExitCode.USAGE)
    result_type = CrawlResult if workflow == "QuarryCrawlWorkflow" else JobResult
    handle = await client.start_workflow(workflow, arg, id=wf_id, task_queue=t.task_queue, result_type=result_type)
    if not wait:
        sys.stdout.write(f"workflow_id={wf_id} workflow={workflow} task_queue={t.task_queue}\n")
        return 0
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        failed = job_result_from(cause.details[0]) if isinstance(cause, ApplicationError) and cause.details else None
        if failed is None:
            sys.stderr.write(f"Error: workflow {wf_id} failed: {cause or exc}\n")
            kind = cause.type if isinstance(cause, ApplicationError) else None
            return int(ExitCode.USAGE) if kind == "config_error" else int(ExitCode.INTERNAL)
        _print(wf_id, workflow, failed)
        return failed.exit_code
    _print(wf_id, workflow, result)
    return int(result.exit_code)


def _print(wf_id: str, workflow: str, result: Any) -> None:
    body = {"workflow_id": wf_id, "workflow": workflow, **dataclasses.asdict(result)}
    sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
