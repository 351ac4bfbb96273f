"""Crawl detail for the Temporal tests: waits ``delay`` seconds first (so a worker can be killed mid-run before
anything is persisted), then one item per product page, and enqueues the listing back (deduplicated)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from quarry_core import QuarryContext

LISTING = str(Path(__file__).with_name("slow_listing.py"))


async def run(ctx: QuarryContext) -> None:
    delay = float(ctx.job.get("delay", 0))
    page = ctx.page
    await page.goto(ctx.job["url"])
    await asyncio.sleep(delay)
    product = page.locator("article.product")
    price = page.locator(".price")
    await ctx.emit.item(
        item_type="product",
        data={
            "sku": await product.get_attribute("data-sku"),
            "name": await page.locator(".name").inner_text(),
            "price": float(await price.inner_text()),
            "url": page.url,
        },
    )
    listing = await page.eval_on_selector("nav a", "a => a.href")
    extra = {"delay": ctx.job["delay"]} if "delay" in ctx.job else {}
    await ctx.emit.enqueue(LISTING, params={"url": listing, **extra})
