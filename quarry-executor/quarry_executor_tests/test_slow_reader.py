"""A runtime that reads slower than the script emits (a strict policy on a slow disk) loses nothing: the executor
waits for its frames to drain however long that takes, and only then exits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from quarry_executor_tests.conftest import ExecResult, Harness

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N = 3000
PAUSE_AT = N - 2000  # ~600 KB still queued: more than the pipe holds, less than the writer's high-water mark
PAUSE = 12.0  # longer than any fixed close deadline


def test_executor_waits_for_a_slow_runtime_to_drain_every_frame(execute: Callable[..., ExecResult]) -> None:
    paused: list[float] = []

    def slow(frame: dict[str, Any], harness: Harness) -> None:
        if frame["type"] == "item" and frame["payload"]["data"]["i"] == PAUSE_AT:
            started = time.monotonic()
            time.sleep(PAUSE)
            paused.append(time.monotonic() - started)

    res = execute(
        f"""
async def run(ctx):
    for i in range({N}):
        await ctx.emit.item(item_type="row", data={{"i": i, "pad": "x" * 280}})
""",
        on_frame=slow,
        timeout=90,
    )
    assert paused and paused[0] >= PAUSE
    assert res.code == 0, res.stderr
    assert [p["data"]["i"] for p in res.items] == list(range(N))
    assert res.types[-2:] == ["run_complete", "run_result"]
    assert "timed out" not in res.stderr
