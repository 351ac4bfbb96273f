"""Script-facing types (CONTRACT_EMIT). Scripts import these from ``quarry_core``; ``quarry_executor``
implements them.

A script is a module with ``async def run(ctx: QuarryContext) -> None`` and optional hooks::

    from quarry_core import QuarryContext

    async def run(ctx: QuarryContext) -> None:
        await ctx.page.goto(ctx.job["url"])
        await ctx.emit.item(item_type="product", data={"title": await ctx.page.title()})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from quarry_core.proxy.model import RedactedProxy

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

__all__ = [
    "EmitAPI",
    "PrepareResult",
    "ProxyRotation",
    "QuarryContext",
    "RedactedProxy",
    "RunMeta",
    "StorageAPI",
    "StoragePutResult",
    "TerminalSignal",
]


@attrs.frozen
class RunMeta:
    """Identity and lineage of the current run."""

    run_id: str
    attempt: int = 1
    job_id: str | None = None
    parent_run_id: str | None = None
    spawned_by_run_id: str | None = None
    depth: int = 0


@attrs.frozen
class PrepareResult:
    """What a ``prepare(job, run)`` hook returns: go on (optionally with a replacement job) or skip the run."""

    action: Literal["continue", "skip"]
    job: Mapping[str, Any] | None = None
    reason: str | None = None

    @classmethod
    def proceed(cls, job: Mapping[str, Any] | None = None) -> PrepareResult:
        return cls(action="continue", job=job)

    @classmethod
    def skip(cls, reason: str | None = None) -> PrepareResult:
        return cls(action="skip", reason=reason)


@attrs.frozen
class TerminalSignal:
    """Handed to ``before_terminal``: how the run is about to end."""

    outcome: Literal["completed", "error"]
    error: BaseException | None = None


@attrs.frozen
class StoragePutResult:
    """Where a sidecar file landed: ``key`` is its path relative to the storage root."""

    key: str


@attrs.frozen
class ProxyRotation:
    """Result of ``ctx.emit.rotate_proxy``."""

    rotated: bool
    proxy: RedactedProxy | None = None
    error: str | None = None


class EmitAPI(Protocol):
    """The only output channel of a script. Every call is serialised in call order (one FIFO lock)."""

    async def item(self, item_type: str, data: Mapping[str, Any]) -> None: ...

    async def artifact(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str: ...

    async def checkpoint(self, checkpoint_id: str, note: str | None = None) -> None: ...

    async def enqueue(
        self,
        target: str,
        params: Mapping[str, Any] | None = None,
        source: str | None = None,
        category: str | None = None,
    ) -> None: ...

    async def rotate_proxy(self, reason: str | None = None) -> ProxyRotation: ...

    async def log(self, level: str, message: str, fields: Mapping[str, Any] | None = None) -> None: ...

    async def debug(self, message: str, fields: Mapping[str, Any] | None = None) -> None: ...

    async def info(self, message: str, fields: Mapping[str, Any] | None = None) -> None: ...

    async def warn(self, message: str, fields: Mapping[str, Any] | None = None) -> None: ...

    async def error(self, message: str, fields: Mapping[str, Any] | None = None) -> None: ...

    async def run_error(self, error_type: str, message: str, stack: str | None = None) -> None: ...

    async def run_complete(self, summary: Mapping[str, Any] | None = None) -> None: ...


class StorageAPI(Protocol):
    """Sidecar files outside the event stream; each put is acknowledged by the runtime."""

    async def put(
        self, filename: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoragePutResult: ...


class QuarryContext(Protocol):
    """Everything a script gets. ``page`` and ``browser_context`` always return the current ones."""

    @property
    def job(self) -> dict[str, Any]: ...

    @property
    def run(self) -> RunMeta: ...

    @property
    def page(self) -> Page: ...

    @property
    def browser_context(self) -> BrowserContext: ...

    @property
    def browser(self) -> Browser: ...

    @property
    def emit(self) -> EmitAPI: ...

    @property
    def storage(self) -> StorageAPI: ...

    @property
    def proxy(self) -> RedactedProxy | None: ...
