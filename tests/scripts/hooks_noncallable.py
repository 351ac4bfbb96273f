from quarry_core import QuarryContext

after_run = "not a function"


async def run(ctx: QuarryContext) -> None:
    await ctx.emit.item(item_type="row", data={"n": 1})
