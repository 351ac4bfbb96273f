from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    rejected = []
    for name in ["../escape.txt", "a/b.txt", "/etc/passwd", "x\x00y", "..", ""]:
        try:
            await ctx.storage.put(filename=name, content_type="text/plain", data=b"nope")
        except Exception as exc:
            rejected.append({"name": name, "error": type(exc).__name__, "message": str(exc)})
    await ctx.emit.item(item_type="rejected", data={"rejected": rejected})
    await ctx.storage.put(filename="fine.txt", content_type="text/plain", data=b"ok")
