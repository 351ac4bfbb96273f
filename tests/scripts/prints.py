import os

from quarry_core import QuarryContext

print("Browser started successfully")


async def run(ctx: QuarryContext) -> None:
    print("printed from run()")
    os.write(1, b"raw write to fd 1\n")
    await ctx.emit.item(item_type="row", data={"n": 1})
