"""Fan-out load: the root enqueues ``n`` children of ``fanout_leaf.py`` (no navigation) (tests/faults/test_load.py)."""

from __future__ import annotations

from pathlib import Path

from quarry_core import QuarryContext

LEAF = str(Path(__file__).with_name("fanout_leaf.py"))


async def run(ctx: QuarryContext) -> None:
    for i in range(int(ctx.job.get("n", 50))):
        await ctx.emit.enqueue(LEAF, params={"i": i})
