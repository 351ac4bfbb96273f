import asyncio

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.page.goto(ctx.job["url"])
    await ctx.emit.item(item_type="row", data={"n": 1})
    cdp = await ctx.browser_context.new_cdp_session(ctx.page)
    crash = asyncio.ensure_future(cdp.send("Page.crash"))  # never answered: the renderer is gone
    try:
        await ctx.page.wait_for_selector("#never-there", timeout=60_000)
    finally:
        crash.cancel()
