"""Emits ``job["n"]`` small items as fast as the pipe takes them (no navigation), a log line every 1000."""

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    emit = ctx.emit
    for i in range(int(ctx.job["n"])):
        await emit.item(item_type="row", data={"i": i, "name": f"row-{i}", "price": i * 0.25})
        if i % 1000 == 999:
            await emit.info("progress", fields={"done": i + 1})
    await emit.run_complete(summary={"rows": int(ctx.job["n"])})
