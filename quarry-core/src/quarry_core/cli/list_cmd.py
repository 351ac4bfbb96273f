"""``quarry list runs | jobs | pools | plugins`` (CONTRACT_CLI §9): newest first, from stored run records,
the configuration's proxy pools and the plugin registry."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from quarry_core.cli.read_common import ReadContext, ReadFailure, parse_since, read_command
from quarry_core.outcomes import ExitCode

__all__ = ["list_app"]

list_app = typer.Typer(name="list", help="List runs, jobs, proxy pools, plugins or executors.", no_args_is_help=True)

_TTY_WARN_ROWS = 100

SourceOption = Annotated[str | None, typer.Option("--source", help="Only this source.")]
CategoryOption = Annotated[str | None, typer.Option("--category", help="Only this category.")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only runs started since: a duration back (2h) or a time/date.")
]
LimitOption = Annotated[int, typer.Option("--limit", help="At most N rows (0 = all).", min=0)]


def check_state(state: str | None) -> None:
    from quarry_core.cli.read_model import STATES

    if state is not None and state not in STATES:
        raise ReadFailure(f'invalid --state "{state}" (must be {", ".join(STATES)})', ExitCode.USAGE)


def stored_runs(ctx: ReadContext, source: str | None = None, category: str | None = None) -> list[dict[str, Any]]:
    """The newest record of every stored run (partition-pruned by source and category)."""
    runs: list[dict[str, Any]] = ctx.reader().runs(source=source, category=category)
    return runs


@list_app.command("runs")
@read_command("list")
def list_runs(
    ctx: ReadContext,
    source: SourceOption = None,
    category: CategoryOption = None,
    state: Annotated[str | None, typer.Option("--state", help="running, succeeded, failed or canceled.")] = None,
    job_id: Annotated[str | None, typer.Option("--job-id", help="Only runs of this job.")] = None,
    since: SinceOption = None,
    limit: LimitOption = 0,
) -> int:
    """Runs, newest first: run_id, state, outcome, job_id, source, category, started_at, duration_ms."""
    from quarry_core.cli import read_model

    check_state(state)
    since_dt = parse_since("--since", since)
    runs = read_model.filter_runs(
        stored_runs(ctx, source, category),
        source=source,
        category=category,
        state=state,
        job_id=job_id,
        since=since_dt,
    )
    rows = read_model.list_runs(runs, limit)
    if limit == 0 and len(rows) > _TTY_WARN_ROWS and sys.stdout.isatty() and not ctx.tui:
        sys.stderr.write(f"Warning: showing {len(rows)} runs; use --limit to page\n")
    ctx.emit(rows)
    return 0


@list_app.command("jobs")
@read_command("list")
def list_jobs(
    ctx: ReadContext,
    source: SourceOption = None,
    category: CategoryOption = None,
    state: Annotated[
        str | None, typer.Option("--state", help="Job state (its newest run's): running, succeeded, failed, canceled.")
    ] = None,
    since: SinceOption = None,
    limit: LimitOption = 0,
) -> int:
    """Jobs (runs sharing a job id), most recently active first: job_id, state, runs, latest_run_id."""
    from quarry_core.cli import read_model

    check_state(state)
    runs = read_model.filter_runs(
        stored_runs(ctx, source, category),
        source=source,
        category=category,
        since=parse_since("--since", since),
    )
    rows = read_model.list_jobs(runs)
    if state is not None:
        rows = [r for r in rows if r["state"] == state]
    ctx.emit(rows[:limit] if limit > 0 else rows)
    return 0


@list_app.command("pools")
@read_command("list")
def list_pools(ctx: ReadContext) -> int:
    """Proxy pools of the configuration file: name, strategy, endpoint_count."""
    from quarry_core.errors import ConfigError
    from quarry_core.proxy.validation import load_pools

    try:
        pools, _ = load_pools(ctx.config.get("proxies"))
    except ConfigError as exc:
        raise ReadFailure(str(exc), ExitCode.USAGE) from None
    ctx.emit([pool.summary() for pool in pools.values()])
    return 0


@list_app.command("plugins")
@read_command("list")
def list_plugins(
    ctx: ReadContext,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind (e.g. ingestion_policy).")] = None,
) -> int:
    """Installed plugins: kind, name, distribution, version, summary (load errors go to stderr)."""
    from quarry_core.plugins import PluginHost, describe_records
    from quarry_core.registrations import KINDS

    if kind is not None and kind not in KINDS:
        raise ReadFailure(f'unknown plugin kind "{kind}" (valid: {", ".join(KINDS)})', ExitCode.USAGE)
    host = PluginHost.build(strict=False)
    for err in host.load_errors:
        sys.stderr.write(f"Warning: plugin {err.entry_point} ({err.distribution}) failed to load: {err.error}\n")
    ctx.emit([dict(row) for row in describe_records(host, kind)])
    return 0


@list_app.command("executors")
@read_command("list")
def list_executors(ctx: ReadContext) -> int:
    """Installed executor plugins: name, distribution, summary."""
    from quarry_core.plugins import PluginHost

    host = PluginHost.build(strict=False)
    ctx.emit(
        [
            {"name": p.name, "distribution": p.distribution, "summary": getattr(p.record, "summary", "")}
            for p in host.records("executor")
        ]
    )
    return 0
