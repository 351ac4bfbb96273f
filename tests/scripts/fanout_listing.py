"""Fan-out test listing: enqueue ``fanout_detail.py`` for every product link (tests/test_fanout_e2e.py)."""

from __future__ import annotations

from pathlib import Path

from quarry_core import QuarryContext

DETAIL = str(Path(__file__).with_name("fanout_detail.py"))


async def run(ctx: QuarryContext) -> None:
    await ctx.page.goto(ctx.job["url"])
    links = await ctx.page.eval_on_selector_all("li.product-link a", "els => els.map(e => e.href)")
    for href in links:
        await ctx.emit.enqueue(DETAIL, params={"url": href})
