"""Fan-out crawl, detail side: one item per product page (enqueued by ``listing.py``).

The page's "All products" link is enqueued back to the listing: with ``--depth 2`` the crawl deduplicates it
against the root (same script, same params), with ``--depth 1`` it is skipped as too deep. Either way every
product is extracted exactly once.
"""

from __future__ import annotations

from pathlib import Path

from quarry_core import QuarryContext

LISTING = str(Path(__file__).with_name("listing.py"))


async def run(ctx: QuarryContext) -> None:
    page = ctx.page
    await page.goto(ctx.job["url"])
    product = page.locator("article.product")
    price = page.locator(".price")
    await ctx.emit.item(
        item_type="product",
        data={
            "sku": await product.get_attribute("data-sku"),
            "name": await page.locator(".name").inner_text(),
            "price": float(await price.inner_text()),
            "currency": await price.get_attribute("data-currency"),
            "url": page.url,
        },
    )
    listing = await page.eval_on_selector("nav a", "a => a.href")
    await ctx.emit.enqueue(LISTING, params={"url": listing})
