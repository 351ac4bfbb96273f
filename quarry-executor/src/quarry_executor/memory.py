"""``ctx.memory`` (runtime.md §16): memory use of the executor process, the browser's JS heap and the cgroup,
with pressure levels ``low`` < ``moderate`` < ``high`` < ``critical``.

Sources:

- ``process``: resident set size from ``/proc/self/statm`` (elsewhere the peak from ``resource.getrusage``);
  limit = the cgroup limit, else physical memory.
- ``browser``: CDP ``Performance.getMetrics`` on the current page, ``JSHeapUsedSize / JSHeapTotalSize``; ``None``
  when opted out, without a page, or on any error (a snapshot never fails because of the browser).
- ``cgroup``: v2 ``memory.current`` / ``memory.max`` (``max`` = unlimited), else v1 ``memory.usage_in_bytes`` /
  ``memory.limit_in_bytes`` (limits ≥ 2^62 are unlimited); the process's own cgroup first, then the mount root.

The pressure is the highest level over the available sources' ratios.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quarry_core.sdk import PRESSURE_LEVELS, MemorySnapshot, MemoryThresholds, MemoryUsage, PressureLevel

if TYPE_CHECKING:
    from playwright.async_api import Page

__all__ = ["MemoryMonitor", "cgroup_usage", "process_usage", "ratio"]

_UNLIMITED_V1 = 1 << 62
_CDP_TIMEOUT = 2.0


def ratio(used: int, limit: int | None) -> float:
    """``used / limit``; 0 without a limit or with a limit of 0."""
    if not limit:
        return 0.0
    return used / limit


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return -1
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_paths(proc_self: Path) -> tuple[str | None, str | None]:
    """``(v2 path, v1 memory path)`` of this process from ``/proc/self/cgroup``."""
    v2 = v1 = None
    try:
        lines = (proc_self / "cgroup").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidates(base: Path, rel: str | None) -> list[Path]:
    out = []
    if rel and rel != "/":
        out.append(base / rel.lstrip("/"))
    out.append(base)
    return out


def cgroup_usage(root: Path = Path("/sys/fs/cgroup"), proc_self: Path = Path("/proc/self")) -> MemoryUsage | None:
    """The cgroup's memory usage (v2, else v1), or None outside a memory cgroup."""
    v2_path, v1_path = _cgroup_paths(proc_self)
    for directory in _candidates(root, v2_path):
        used = _read_int(directory / "memory.current")
        if used is not None and used >= 0:
            limit = _read_int(directory / "memory.max")
            limit = None if limit is None or limit < 0 else limit
            return MemoryUsage(used=used, limit=limit, ratio=ratio(used, limit))
    for directory in _candidates(root / "memory", v1_path):
        used = _read_int(directory / "memory.usage_in_bytes")
        if used is not None and used >= 0:
            limit = _read_int(directory / "memory.limit_in_bytes")
            limit = None if limit is None or limit < 0 or limit >= _UNLIMITED_V1 else limit
            return MemoryUsage(used=used, limit=limit, ratio=ratio(used, limit))
    return None


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def process_usage(cgroup: MemoryUsage | None, proc_self: Path = Path("/proc/self")) -> MemoryUsage:
    """This process's resident set size; limit = the cgroup's limit, else physical memory."""
    used: int | None = None
    try:
        fields = (proc_self / "statm").read_text().split()
        used = int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        used = peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
    limit = cgroup.limit if cgroup is not None and cgroup.limit else _physical_memory()
    return MemoryUsage(used=used, limit=limit, ratio=ratio(used, limit))


async def browser_usage(page: Page | None) -> MemoryUsage | None:
    """The page's JS heap through CDP ``Performance.getMetrics``; None without a page or on any error."""
    if page is None:
        return None
    try:
        async with asyncio.timeout(_CDP_TIMEOUT):
            session = await page.context.new_cdp_session(page)
            try:
                await session.send("Performance.enable")
                result = await session.send("Performance.getMetrics")
            finally:
                await session.detach()
    except Exception:  # browser gone, not Chromium, page closed, timeout: no browser source
        return None
    metrics = {m.get("name"): m.get("value") for m in result.get("metrics", [])}
    used, total = metrics.get("JSHeapUsedSize"), metrics.get("JSHeapTotalSize")
    if not isinstance(used, (int, float)) or not isinstance(total, (int, float)):
        return None
    return MemoryUsage(used=int(used), limit=int(total), ratio=ratio(int(used), int(total)))


class MemoryMonitor:
    """Implements :class:`quarry_core.sdk.MemoryAPI`. ``page`` returns the run's current page (or None)."""

    def __init__(
        self,
        page: Callable[[], Any] | None = None,
        *,
        thresholds: MemoryThresholds | None = None,
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        proc_self: Path = Path("/proc/self"),
    ) -> None:
        self._page = page
        self._thresholds = thresholds or MemoryThresholds()
        self._cgroup_root = cgroup_root
        self._proc_self = proc_self

    @property
    def thresholds(self) -> MemoryThresholds:
        return self._thresholds

    def configure(
        self, *, moderate: float | None = None, high: float | None = None, critical: float | None = None
    ) -> MemoryThresholds:
        """Override some thresholds (the others keep their values); ``ValueError`` leaves them unchanged."""
        current = self._thresholds
        self._thresholds = MemoryThresholds(
            moderate=current.moderate if moderate is None else moderate,
            high=current.high if high is None else high,
            critical=current.critical if critical is None else critical,
        )
        return self._thresholds

    async def snapshot(self, browser: bool = True) -> MemorySnapshot:
        cgroup = cgroup_usage(self._cgroup_root, self._proc_self)
        process = process_usage(cgroup, self._proc_self)
        page = self._page() if browser and self._page is not None else None
        browser_mem = await browser_usage(page) if browser else None
        ratios = [u.ratio for u in (process, browser_mem, cgroup) if u is not None]
        levels = [self._thresholds.level(r) for r in ratios]
        pressure: PressureLevel = max(levels, key=PRESSURE_LEVELS.index) if levels else "low"
        return MemorySnapshot(process=process, browser=browser_mem, cgroup=cgroup, pressure=pressure, ts=time.time())

    async def is_above(self, level: PressureLevel) -> bool:
        """Whether the current pressure is at least ``level`` (``is_above("low")`` is always true)."""
        if level not in PRESSURE_LEVELS:
            raise ValueError(f"unknown pressure level {level!r} (valid: {', '.join(PRESSURE_LEVELS)})")
        snap = await self.snapshot()
        return PRESSURE_LEVELS.index(snap.pressure) >= PRESSURE_LEVELS.index(level)
