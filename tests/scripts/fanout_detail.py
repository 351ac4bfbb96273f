"""Fan-out test detail: one item per product; the product named by ``QUARRY_TEST_HANG_SKU`` writes this
executor's pid to ``QUARRY_TEST_PID_FILE`` and hangs, so a test can kill the executor mid-run."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    page = ctx.page
    await page.goto(ctx.job["url"])
    sku = await page.locator("article.product").get_attribute("data-sku")
    if sku == os.environ.get("QUARRY_TEST_HANG_SKU"):
        path = Path(os.environ["QUARRY_TEST_PID_FILE"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(path)
        await asyncio.sleep(120)
    await ctx.emit.item(item_type="product", data={"sku": sku, "pid": os.getpid()})
