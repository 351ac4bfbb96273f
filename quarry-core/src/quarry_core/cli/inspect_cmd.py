"""``quarry inspect run <id> | job <id>`` (CONTRACT_CLI §9) from stored run records; ``--tui`` allowed.

``inspect_app`` is a typer sub-app: other modules add ``inspect <thing>`` commands to it (``inspect proxy``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from quarry_core.cli.read_common import ReadContext, ReadFailure, read_command

__all__ = ["artifact_items", "inspect_app"]

inspect_app = typer.Typer(name="inspect", help="Inspect one run, job or executor in detail.", no_args_is_help=True)


def artifact_items(ctx: ReadContext, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's committed artifacts (``artifact_event`` rows): artifact_id, name, content_type, size_bytes."""
    table = ctx.reader().read(
        "events",
        source=rec.get("source"),
        category=rec.get("category"),
        day=rec.get("day"),
        run_id=rec["run_id"],
        event_type="artifact",
        columns=["record_kind", "artifact_id", "name", "content_type", "size_bytes"],
    )
    seen: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        if row["record_kind"] == "artifact_event" and row["artifact_id"] not in seen:
            seen[row["artifact_id"]] = {k: row[k] for k in ("artifact_id", "name", "content_type", "size_bytes")}
    return list(seen.values())


def find_run(ctx: ReadContext, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's newest record and every stored run (for lineage); exit 1 ``run not found: <id>``."""
    runs: list[dict[str, Any]] = ctx.reader().runs()
    for rec in runs:
        if rec.get("run_id") == run_id:
            return rec, runs
    raise ReadFailure(f"run not found: {run_id}")


@inspect_app.command("run")
@read_command("inspect", tui=True)
def inspect_run(
    ctx: ReadContext,
    run_id: Annotated[str, typer.Argument(help="The run id.", show_default=False)],
) -> int:
    """One run: lineage (retries, fan-out children), outcome, counters, artifacts, sidecar files."""
    from quarry_core.cli import read_model

    rec, runs = find_run(ctx, run_id)
    data = read_model.inspect_run(rec, runs, artifact_items(ctx, rec))
    ctx.emit(data, title=f"run {run_id}")
    return 0


@inspect_app.command("job")
@read_command("inspect", tui=True)
def inspect_job(
    ctx: ReadContext,
    job_id: Annotated[str, typer.Argument(help="The job id.", show_default=False)],
) -> int:
    """One job: its state (the newest run's), attempts and runs."""
    from quarry_core.cli import read_model

    runs = read_model.jobs_of(ctx.reader().runs()).get(job_id)
    if not runs:
        raise ReadFailure(f"job not found: {job_id}")
    ctx.emit(read_model.inspect_job(job_id, runs), title=f"job {job_id}")
    return 0


@inspect_app.command("executor")
@read_command("inspect", tui=True)
def inspect_executor(
    ctx: ReadContext,
    name: Annotated[str, typer.Argument(help="The executor plugin name (e.g. playwright).", show_default=False)],
) -> int:
    """One executor plugin and its use in the stored runs: runs, crashes, launch failures, last use."""
    from quarry_core.cli import read_model
    from quarry_core.errors import UnknownPluginError
    from quarry_core.plugins import PluginHost

    try:
        plugin = PluginHost.build(strict=False).executor(name)
    except UnknownPluginError as exc:
        raise ReadFailure(str(exc)) from None
    usage = read_model.executor_stats(ctx.reader().runs()).get(name, {})
    ctx.emit(
        {
            "name": plugin.name,
            "distribution": plugin.distribution,
            "version": plugin.version,
            "summary": getattr(plugin.record, "summary", ""),
            "runs": usage.get("runs", 0),
            "crashes": usage.get("crashes", 0),
            "launch_failures": usage.get("launch_failures", 0),
            "last_used_at": usage.get("last_used_at"),
        },
        title=f"executor {name}",
    )
    return 0
