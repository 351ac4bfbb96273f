"""``ctx.memory`` sources and pressure levels (runtime.md §16), on cgroup and /proc trees written to disk."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from quarry_core.sdk import MemoryThresholds
from quarry_executor.memory import MemoryMonitor, cgroup_usage, process_usage

MiB = 1024 * 1024


def _proc(tmp_path: Path, cgroup: str, rss_pages: int = 1000) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "statm").write_text(f"50000 {rss_pages} 300 10 0 2000 0\n")
    return proc


def test_cgroup_v2_own_group_first_and_max_is_unlimited(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    own = root / "app.slice"
    own.mkdir(parents=True)
    (own / "memory.current").write_text(f"{300 * MiB}\n")
    (own / "memory.max").write_text(f"{400 * MiB}\n")
    (root / "memory.current").write_text("1\n")
    proc = _proc(tmp_path, "0::/app.slice\n")
    usage = cgroup_usage(root, proc)
    assert usage is not None and (usage.used, usage.limit, usage.ratio) == (300 * MiB, 400 * MiB, 0.75)
    (own / "memory.max").write_text("max\n")
    usage = cgroup_usage(root, proc)
    assert usage is not None and usage.limit is None and usage.ratio == 0


def test_cgroup_v1_huge_limit_is_unlimited_and_zero_limit_gives_ratio_0(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    mem = root / "memory"
    mem.mkdir(parents=True)
    (mem / "memory.usage_in_bytes").write_text(f"{100 * MiB}\n")
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    proc = _proc(tmp_path, "4:memory:/docker/abc\n0::/\n")  # own group missing: the mount root is used
    usage = cgroup_usage(root, proc)
    assert usage is not None and usage.used == 100 * MiB and usage.limit is None
    (mem / "memory.limit_in_bytes").write_text("0\n")
    usage = cgroup_usage(root, proc)
    assert usage is not None and usage.limit == 0 and usage.ratio == 0


def test_no_cgroup_and_process_limit_falls_back_to_physical_memory(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "0::/\n", rss_pages=2560)
    assert cgroup_usage(tmp_path / "nothing", proc) is None
    usage = process_usage(None, proc)
    assert usage.used == 2560 * os.sysconf("SC_PAGE_SIZE")
    assert usage.limit is not None and usage.limit > usage.used


def test_pressure_is_the_highest_level_over_sources(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "memory.current").write_text(f"{95 * MiB}\n")
    (root / "memory.max").write_text(f"{100 * MiB}\n")
    proc = _proc(tmp_path, "0::/\n", rss_pages=256)  # 1 MiB of 100 MiB: low on its own
    monitor = MemoryMonitor(cgroup_root=root, proc_self=proc)
    snap = asyncio.run(monitor.snapshot())
    assert snap.browser is None  # no page
    assert snap.process.limit == 100 * MiB  # the cgroup limit bounds the process
    assert snap.pressure == "critical"
    assert asyncio.run(monitor.is_above("high")) is True
    monitor.configure(critical=0.99)
    assert asyncio.run(monitor.snapshot()).pressure == "high"
    (root / "memory.current").write_text(f"{10 * MiB}\n")
    assert asyncio.run(monitor.snapshot()).pressure == "low"
    assert asyncio.run(monitor.is_above("low")) is True
    assert asyncio.run(monitor.is_above("moderate")) is False
    with pytest.raises(ValueError, match="unknown pressure level"):
        asyncio.run(monitor.is_above("extreme"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"moderate": 0}, {"critical": 1.5}, {"moderate": 0.8}, {"high": 0.9}, {"moderate": True}, {"high": "0.6"}],
)
def test_bad_thresholds_raise_and_leave_the_old_ones(kwargs: dict[str, object]) -> None:
    monitor = MemoryMonitor()
    with pytest.raises(ValueError, match="memory threshold"):
        monitor.configure(**kwargs)  # type: ignore[arg-type]
    assert monitor.thresholds == MemoryThresholds()


def test_levels_at_the_boundaries() -> None:
    t = MemoryThresholds(moderate=0.6)
    assert [t.level(r) for r in (0.0, 0.59, 0.6, 0.7, 0.9, 1.0)] == [
        "low",
        "low",
        "moderate",
        "high",
        "critical",
        "critical",
    ]
