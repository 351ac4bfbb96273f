"""Demo crawl: read the listing page, visit every product page, emit one item per product.

quarry run examples/demo/crawl.py --job '{"url": "http://127.0.0.1:8000/index.html"}'
"""

from __future__ import annotations

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    page = ctx.page
    await page.goto(ctx.job["url"])
    links = await page.eval_on_selector_all("li.product-link a", "els => els.map(e => e.href)")
    await ctx.emit.info("listing parsed", fields={"products": len(links)})
    for href in links:
        await page.goto(href)
        product = page.locator("article.product")
        await ctx.emit.item(
            item_type="product",
            data={
                "sku": await product.get_attribute("data-sku"),
                "name": await page.locator(".name").inner_text(),
                "price": float(await page.locator(".price").inner_text()),
                "currency": await page.locator(".price").get_attribute("data-currency"),
                "stock": await page.locator(".stock").inner_text(),
                "url": href,
            },
        )
    await ctx.emit.checkpoint(checkpoint_id="listing-done", note=f"{len(links)} products")
    shot = await page.screenshot()
    await ctx.emit.artifact(name="last-product.png", data=shot, content_type="image/png")
    await ctx.emit.run_complete(summary={"products": len(links)})
