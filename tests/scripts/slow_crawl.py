import asyncio

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    for i in range(10_000):
        await ctx.emit.item(item_type="row", data={"n": i})
        await asyncio.sleep(0.02)
