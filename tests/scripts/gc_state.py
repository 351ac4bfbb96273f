"""Emits the executor's garbage-collector settings as an item (tests/test_gc_tuning.py)."""

import gc

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.emit.item("gc", {"threshold": list(gc.get_threshold()), "frozen": gc.get_freeze_count()})
