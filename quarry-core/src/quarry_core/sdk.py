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
    "PRESSURE_LEVELS",
    "EmitAPI",
    "MemoryAPI",
    "MemorySnapshot",
    "MemoryThresholds",
    "MemoryUsage",
    "PrepareResult",
    "PressureLevel",
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


PressureLevel = Literal["low", "moderate", "high", "critical"]
"""Memory pressure, lowest first (runtime.md §16)."""

PRESSURE_LEVELS: tuple[PressureLevel, ...] = ("low", "moderate", "high", "critical")


def _check_ratio(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"memory threshold {attribute.name} must be a number in (0, 1], got {value!r}")


@attrs.frozen
class MemoryThresholds:
    """The ratios at which pressure becomes ``moderate``, ``high`` and ``critical``: each in (0, 1], strictly
    increasing, else ``ValueError``. Below ``moderate`` it is ``low``."""

    moderate: float = attrs.field(default=0.5, validator=_check_ratio)
    high: float = attrs.field(default=0.7, validator=_check_ratio)
    critical: float = attrs.field(default=0.9, validator=_check_ratio)

    def __attrs_post_init__(self) -> None:
        if not self.moderate < self.high < self.critical:
            raise ValueError(
                "memory thresholds must be strictly increasing: "
                f"moderate={self.moderate} < high={self.high} < critical={self.critical}"
            )

    def level(self, ratio: float) -> PressureLevel:
        """The pressure level of one usage ratio."""
        if ratio >= self.critical:
            return "critical"
        if ratio >= self.high:
            return "high"
        if ratio >= self.moderate:
            return "moderate"
        return "low"


@attrs.frozen
class MemoryUsage:
    """One source's usage: ``used`` and ``limit`` in bytes (``limit`` None = unlimited), ``ratio`` = used / limit
    (0 without a limit or with a limit of 0)."""

    used: int
    limit: int | None
    ratio: float


@attrs.frozen
class MemorySnapshot:
    """``ctx.memory.snapshot()``: the executor process, the browser's JS heap (None if opted out, no page or any
    error), the cgroup (None outside one), the highest pressure level over the available sources, and ``ts``
    (seconds since the epoch)."""

    process: MemoryUsage
    browser: MemoryUsage | None
    cgroup: MemoryUsage | None
    pressure: PressureLevel
    ts: float


class MemoryAPI(Protocol):
    """Memory pressure of the run's container (runtime.md §16)."""

    @property
    def thresholds(self) -> MemoryThresholds: ...

    def configure(
        self, *, moderate: float | None = None, high: float | None = None, critical: float | None = None
    ) -> MemoryThresholds: ...

    async def snapshot(self, browser: bool = True) -> MemorySnapshot: ...

    async def is_above(self, level: PressureLevel) -> bool: ...


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
    def memory(self) -> MemoryAPI: ...

    @property
    def proxy(self) -> RedactedProxy | None: ...
