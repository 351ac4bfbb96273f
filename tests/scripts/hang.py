import asyncio

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.emit.item(item_type="row", data={"n": 1})
    await asyncio.sleep(3600)
