"""Dogfooding crawl (seed Phase 6): the same script, run under a precision-first and a volume-first policy.

It reads the bundled site's listing page, visits every product page and emits what a real crawl emits: log
lines (droppable), one item per product, a checkpoint, an artifact (the catalogue as JSON, so its bytes are the
same on every run) and a terminal event. Nothing in it knows the policy; only the command line differs::

    quarry run examples/dogfood/crawl.py --source dogfood --job '{"url": "http://127.0.0.1:8000/index.html"}'
    quarry run examples/dogfood/crawl.py --source dogfood --job '{"url": "…"}' --policy buffered --buffer-events 8

``examples/dogfood/compare.py`` runs both and compares what they stored; ``tests/test_dogfood_e2e.py`` asserts
it: the same partitions, the same envelopes (apart from run ids, event ids and timestamps), the same order, and
every drop visible in the metrics record and the summary.
"""

from __future__ import annotations

import json

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    page = ctx.page
    emit = ctx.emit
    await page.goto(ctx.job["url"])
    links = await page.eval_on_selector_all("li.product-link a", "els => els.map(e => e.href)")
    await emit.info("listing parsed", fields={"products": len(links)})
    catalogue = []
    for n, href in enumerate(links, start=1):
        await emit.debug("visiting product page", fields={"n": n, "url": href})
        await page.goto(href)
        product = page.locator("article.product")
        price = page.locator(".price")
        item = {
            "sku": await product.get_attribute("data-sku"),
            "name": await page.locator(".name").inner_text(),
            "price": float(await price.inner_text()),
            "currency": await price.get_attribute("data-currency"),
            "stock": await page.locator(".stock").inner_text(),
            "url": href,
        }
        await emit.item(item_type="product", data=item)
        await emit.debug("product extracted", fields={"sku": item["sku"]})
        catalogue.append(item)
        if n % 4 == 0:
            await emit.checkpoint(checkpoint_id=f"products-{n}", note=f"{n} of {len(links)} products")
    data = json.dumps(catalogue, sort_keys=True, separators=(",", ":")).encode()
    await emit.artifact(name="catalogue.json", data=data, content_type="application/json")
    await emit.info("crawl done", fields={"products": len(catalogue), "catalogue_bytes": len(data)})
    await emit.run_complete(summary={"products": len(catalogue)})
