"""The :class:`quarry_core.sdk.QuarryContext` handed to scripts (runtime.md §14.1).

Read-only from the script's side: every attribute is a property. ``page`` and ``browser_context`` return the
current ones, which change when ``ctx.emit.rotate_proxy()`` applies a new proxy (proxy.md §9).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quarry_core.sdk import RedactedProxy, RunMeta
from quarry_executor.browser import redact_proxy
from quarry_executor.memory import MemoryMonitor

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

    from quarry_executor.browser import BrowserSession
    from quarry_executor.emit import Emitter
    from quarry_executor.storage import Storage

__all__ = ["RunContext"]


class RunContext:
    """One run's context: job, run identity, browser objects, ``emit``, ``storage``, ``memory`` and the redacted
    proxy."""

    __slots__ = ("_browser_context", "_emit", "_job", "_memory", "_page", "_proxy", "_run", "_session", "_storage")

    def __init__(
        self,
        *,
        job: dict[str, Any],
        run: RunMeta,
        emit: Emitter,
        storage: Storage,
        session: BrowserSession,
        browser_context: BrowserContext,
        page: Page,
        proxy: Mapping[str, Any] | None,
    ) -> None:
        self._job = job
        self._run = run
        self._emit = emit
        self._storage = storage
        self._session = session
        self._browser_context = browser_context
        self._page = page
        self._proxy = dict(proxy) if proxy is not None else None
        self._memory = MemoryMonitor(lambda: self._page)

    def __repr__(self) -> str:
        return f"<RunContext run_id={self._run.run_id!r} attempt={self._run.attempt}>"

    @property
    def job(self) -> dict[str, Any]:
        return self._job

    @property
    def run(self) -> RunMeta:
        return self._run

    @property
    def page(self) -> Page:
        return self._page

    @property
    def browser_context(self) -> BrowserContext:
        return self._browser_context

    @property
    def browser(self) -> Browser:
        return self._session.browser

    @property
    def emit(self) -> Emitter:
        return self._emit

    @property
    def storage(self) -> Storage:
        return self._storage

    @property
    def memory(self) -> MemoryMonitor:
        return self._memory

    @property
    def proxy(self) -> RedactedProxy | None:
        return redact_proxy(self._proxy)

    # ---- host side (not part of QuarryContext)

    def proxy_endpoint(self) -> dict[str, Any] | None:
        """The endpoint in use, password included (never logged)."""
        return self._proxy

    async def apply_proxy(self, proxy: Mapping[str, Any]) -> RedactedProxy | None:
        """New context with ``proxy`` and a new page; then close the old page and context (proxy.md §9)."""
        context, page = await self._session.new_page(proxy)
        old_context = self._browser_context
        self._browser_context, self._page, self._proxy = context, page, dict(proxy)
        try:
            await old_context.close()
        except Exception:
            pass
        return redact_proxy(self._proxy)
