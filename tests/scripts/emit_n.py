from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    n = int(ctx.job.get("n", 1000))
    emit = ctx.emit
    for i in range(n):
        await emit.item(item_type="row", data={"i": i, "name": f"item-{i}"})
