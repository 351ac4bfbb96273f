"""``--isolation page``: one pooled page per warm executor, renewed every ``PAGE_RENEW_AFTER`` runs (real Chromium)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from quarry_executor import warm
from quarry_executor.warm import PooledSession


@pytest.mark.browser
def test_the_pooled_page_serves_its_runs_then_is_replaced_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARRY_ISOLATION", "page")
    monkeypatch.setattr(warm, "PAGE_RENEW_AFTER", 3)

    async def scenario() -> None:
        session = await PooledSession.open(None)
        assert isinstance(session, PooledSession)
        try:
            pairs = []
            for _ in range(7):
                context, page = await session.new_page(None)
                await page.goto("data:text/html,<p>run</p>")
                pairs.append((context, page))
                await session.discard(context, page)
            pages = [page for _, page in pairs]
            # runs 1-3 share one page, 4-6 the next, 7 a third
            assert pages[0] is pages[1] is pages[2]
            assert pages[3] is pages[4] is pages[5]
            assert pages[6] is not pages[3] and pages[3] is not pages[0]
            await asyncio.sleep(0.5)  # the replaced pairs close in the background
            assert pages[0].is_closed() and pages[3].is_closed() and not pages[6].is_closed()
            assert len(session.browser.contexts) == 1
            # a run with a proxy still gets a context of its own, outside the count
            own_context, own_page = await session.new_page({"protocol": "http", "host": "127.0.0.1", "port": 9})
            assert own_page is not pages[6]
            await session.discard(own_context, own_page)
            _, page = await session.new_page(None)
            assert page is pages[6]
        finally:
            await session.close()

    asyncio.run(scenario())


@pytest.mark.browser
def test_a_runs_routes_do_not_outlive_it_on_the_pooled_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARRY_ISOLATION", "page")

    async def scenario() -> None:
        session = await PooledSession.open(None)
        assert isinstance(session, PooledSession)
        try:
            context, page = await session.new_page(None)
            assert not warm._may_have_routes(page)

            async def fake(route: Any) -> None:
                await route.fulfill(body="<p id=x>routed</p>", content_type="text/html")

            await page.route("http://quarry.invalid/**", fake)
            await page.goto("http://quarry.invalid/a")
            assert await page.inner_text("#x") == "routed"
            assert warm._may_have_routes(page)
            await session.discard(context, page)  # the run ends

            context, again = await session.new_page(None)
            assert again is page and not warm._may_have_routes(page)
            with pytest.raises(Exception, match="ERR_NAME_NOT_RESOLVED"):
                await page.goto("http://quarry.invalid/a")
            await session.discard(context, page)
        finally:
            await session.close()

    asyncio.run(scenario())
