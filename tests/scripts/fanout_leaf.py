from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.page.set_content(f"<title>leaf {ctx.job['i']}</title>")
    await ctx.emit.item(item_type="leaf", data={"i": ctx.job["i"], "title": await ctx.page.title()})
