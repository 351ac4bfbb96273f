"""Crawl listing for the Temporal tests: one ``slow_detail.py`` child per product link (category ``detail``)."""

from __future__ import annotations

from pathlib import Path

from quarry_core import QuarryContext

DETAIL = str(Path(__file__).with_name("slow_detail.py"))


async def run(ctx: QuarryContext) -> None:
    page = ctx.page
    await page.goto(ctx.job["url"])
    links = await page.eval_on_selector_all("li.product-link a", "els => els.map(e => e.href)")
    extra = {"delay": ctx.job["delay"]} if "delay" in ctx.job else {}
    for href in links:
        await ctx.emit.enqueue(DETAIL, params={"url": href, **extra}, category="detail")
    await ctx.emit.run_complete(summary={"links": len(links)})
