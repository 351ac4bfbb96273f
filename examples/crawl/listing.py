"""Fan-out crawl, listing side: one child run per product link (CONTRACT_RUN §4).

    quarry run examples/crawl/listing.py --job '{"url": "http://127.0.0.1:8000/index.html"}' \
        --depth 2 --max-runs 100 --parallel 4

Each ``enqueue`` becomes a child run of ``detail.py`` with the product's URL as its job, in category ``detail``.
"""

from __future__ import annotations

from pathlib import Path

from quarry_core import QuarryContext

DETAIL = str(Path(__file__).with_name("detail.py"))


async def run(ctx: QuarryContext) -> None:
    page = ctx.page
    await page.goto(ctx.job["url"])
    links = await page.eval_on_selector_all("li.product-link a", "els => els.map(e => e.href)")
    for href in links:
        await ctx.emit.enqueue(DETAIL, params={"url": href}, category="detail")
    await ctx.emit.run_complete(summary={"links": len(links)})
