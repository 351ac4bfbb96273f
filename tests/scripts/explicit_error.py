from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.emit.run_error(error_type="blocked", message="captcha wall")
