from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.page.goto(ctx.job["url"])
    names = await ctx.page.locator("li.product-link a").all_inner_texts()
    await ctx.emit.info("listing loaded", fields={"count": len(names)})
    for name in names:
        await ctx.emit.item(item_type="product", data={"name": name, "title": await ctx.page.title()})
    await ctx.emit.checkpoint(checkpoint_id="page-1", note="listing done")
