"""Every lifecycle hook appends one JSON line to the job's ``trace`` file; ``job["mode"]`` picks the path."""

import asyncio
import json

from quarry_core import PrepareResult, QuarryContext, TerminalEventError


def _trace(job, hook, **extra):
    with open(job["trace"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"hook": hook, **extra}) + "\n")


def prepare(job, run):
    _trace(job, "prepare", run_id=run.run_id)
    mode = job.get("mode")
    if mode == "skip":
        return PrepareResult.skip(reason="stale job")
    if mode == "skip_dict":
        return {"action": "skip"}
    if mode == "prepare_raises":
        raise RuntimeError("prepare broke")
    if mode == "prepare_bad":
        return 42
    if mode == "prepare_unknown":
        return {"action": "later"}
    if job.get("replace_job"):
        return {"action": "continue", "job": {**job, "replaced": True}}
    return PrepareResult.proceed()


def before_run(ctx: QuarryContext) -> None:  # a sync hook
    _trace(ctx.job, "before_run")


async def run(ctx: QuarryContext) -> None:
    _trace(ctx.job, "run", replaced=ctx.job.get("replaced", False))
    await ctx.emit.item(item_type="row", data={"n": 1})
    mode = ctx.job.get("mode")
    if mode in ("run_raises", "on_error_terminal"):
        raise ValueError("run broke")
    if mode == "hang":
        await asyncio.sleep(3600)


async def after_run(ctx: QuarryContext) -> None:
    _trace(ctx.job, "after_run")


async def on_error(error, ctx: QuarryContext) -> None:
    _trace(ctx.job, "on_error", error=str(error))
    if ctx.job.get("mode") == "on_error_terminal":
        await ctx.emit.run_error(error_type="handled", message="on_error ended the run")
    if ctx.job.get("hooks_raise"):
        raise RuntimeError("on_error broke")


async def before_terminal(signal, ctx: QuarryContext) -> None:
    _trace(ctx.job, "before_terminal", outcome=signal.outcome, error=str(signal.error) if signal.error else None)
    await ctx.emit.item(item_type="last_words", data={"outcome": signal.outcome})
    if ctx.job.get("hooks_raise"):
        raise RuntimeError("before_terminal broke")


async def cleanup(ctx: QuarryContext) -> None:
    try:
        await ctx.emit.item(item_type="too_late", data={})
        refused = False
    except TerminalEventError:
        refused = True
    _trace(ctx.job, "cleanup", emit_refused=refused)
    if ctx.job.get("cleanup_raises"):
        raise RuntimeError("cleanup broke")
