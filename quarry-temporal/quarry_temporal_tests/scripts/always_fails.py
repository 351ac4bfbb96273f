"""Fails every time, after one item: a ``script_error`` the job workflow retries until ``max_attempts``."""

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.emit.item(item_type="row", data={"attempt": ctx.run.attempt})
    raise RuntimeError(f"always fails (attempt {ctx.run.attempt})")
