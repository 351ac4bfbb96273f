import asyncio

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.page.goto(ctx.job["url"])
    for i in range(100_000):
        title = await ctx.page.title()
        await ctx.emit.item(item_type="row", data={"n": i, "title": title})
        await asyncio.sleep(0.05)
