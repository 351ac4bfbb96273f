import hashlib
import random

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    size = int(ctx.job.get("size", 1024))
    data = random.Random(size).randbytes(size)
    artifact_id = await ctx.emit.artifact(name="blob.bin", data=data, content_type="application/octet-stream")
    await ctx.emit.item(
        item_type="artifact_ref",
        data={"artifact_id": artifact_id, "sha256": hashlib.sha256(data).hexdigest()},
    )
