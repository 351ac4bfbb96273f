"""``quarry stats runs | jobs | metrics`` (CONTRACT_CLI §9): totals over a time window (``--since``/``--until``)
and partitions (``--source``/``--category``) from stored run and metrics records; ``--tui`` allowed.

``stats_app`` is a typer sub-app: other modules add ``stats <thing>`` commands to it (``stats proxies``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from quarry_core.cli.list_cmd import CategoryOption, SourceOption
from quarry_core.cli.read_common import ReadContext, ReadFailure, parse_since, read_command

__all__ = ["stats_app"]

stats_app = typer.Typer(name="stats", help="Aggregate runs, jobs and metrics.", no_args_is_help=True)

SinceOption = Annotated[
    str | None, typer.Option("--since", help="Window start: a duration back (24h) or an RFC 3339 time/date.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Window end (exclusive): a duration back or an RFC 3339 time/date.")
]


def _window(since: str | None, until: str | None) -> tuple[Any, Any]:
    return parse_since("--since", since), parse_since("--until", until)


def _runs(ctx: ReadContext, source: str | None, category: str | None, since: str | None, until: str | None) -> Any:
    """The run records matching the partitions and the time window."""
    from quarry_core.cli import read_model

    since_dt, until_dt = _window(since, until)
    return read_model.filter_runs(
        ctx.reader().runs(source=source, category=category),
        source=source,
        category=category,
        since=since_dt,
        until=until_dt,
    )


@stats_app.command("runs")
@read_command("stats", tui=True)
def stats_runs(
    ctx: ReadContext,
    source: SourceOption = None,
    category: CategoryOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> int:
    """Runs by state and outcome (total, running, succeeded, failed, canceled, by_outcome) plus totals."""
    from quarry_core.cli import read_model

    runs = _runs(ctx, source, category, since, until)
    ctx.emit(read_model.stats_runs(runs), title="stats runs")
    return 0


@stats_app.command("jobs")
@read_command("stats", tui=True)
def stats_jobs(
    ctx: ReadContext,
    source: SourceOption = None,
    category: CategoryOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> int:
    """Jobs by the state of each job's newest run."""
    from quarry_core.cli import read_model

    runs = _runs(ctx, source, category, since, until)
    ctx.emit(read_model.stats_jobs(runs), title="stats jobs")
    return 0


@stats_app.command("metrics")
@read_command("stats", tui=True)
def stats_metrics(
    ctx: ReadContext,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Only this run's metrics.")] = None,
    source: SourceOption = None,
    category: CategoryOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    aggregate: Annotated[
        bool, typer.Option("--aggregate", help="Sum the counters of every matching run (adds runs).")
    ] = False,
) -> int:
    """The newest metrics record (without partition keys), or with --aggregate the sums over matching runs."""
    from quarry_core.cli import read_model

    since_dt, until_dt = _window(since, until)
    rows = (
        ctx.reader()
        .read("metrics", source=source, category=category, run_id=run_id)
        .to_pylist(maps_as_pydicts="strict")
    )
    rows = [
        r
        for r in rows
        if (since_dt is None or (r.get("ts") is not None and r["ts"] >= since_dt))
        and (until_dt is None or (r.get("ts") is not None and r["ts"] < until_dt))
    ]
    if aggregate:
        ctx.emit(read_model.aggregate_metrics(rows), title="stats metrics")
        return 0
    if not rows:
        where = ", ".join(f"{k}={v}" for k, v in (("run_id", run_id), ("source", source)) if v is not None)
        raise ReadFailure(f"no metrics found{' for ' + where if where else ''}")
    newest = rows[0]
    for row in rows[1:]:
        if row["ts"] >= newest["ts"]:
            newest = row
    ctx.emit(read_model.metrics_record(newest), title="stats metrics")
    return 0


@stats_app.command("executors")
@read_command("stats", tui=True)
def stats_executors(
    ctx: ReadContext,
    source: SourceOption = None,
    category: CategoryOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> int:
    """Runs per executor: runs, running, crashes, launch_failures, last_used_at."""
    from quarry_core.cli import read_model

    runs = _runs(ctx, source, category, since, until)
    ctx.emit(list(read_model.executor_stats(runs).values()), title="stats executors")
    return 0
