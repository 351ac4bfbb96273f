import os
import signal

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    await ctx.emit.item(item_type="row", data={"n": 1})
    os.kill(os.getpid(), signal.SIGKILL)
