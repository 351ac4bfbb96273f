"""Cancellation (runtime.md §14.3): a ``cancel`` frame or SIGTERM; SIGINT is ignored."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from quarry_core.protocol import Cancel

pytestmark = pytest.mark.browser

SLOW = """
import asyncio

async def run(ctx):
    await ctx.emit.item("started", {})
    await asyncio.sleep(60)
    await ctx.emit.item("never", {})

async def after_run(ctx):
    print("AFTER-RUN-CALLED")

async def on_error(error, ctx):
    print("ON-ERROR-CALLED")

async def before_terminal(signal, ctx):
    print("BEFORE-TERMINAL-CALLED")

async def cleanup(ctx):
    print("CLEANUP-CALLED")
"""


def _skipped_hooks_absent(stderr: str) -> None:
    for marker in ("AFTER-RUN-CALLED", "ON-ERROR-CALLED", "BEFORE-TERMINAL-CALLED"):
        assert marker not in stderr


@pytest.mark.parametrize(("reason", "error_type"), [("signal", "canceled"), ("timeout", "timeout")])
def test_cancel_frame(execute: Any, reason: str, error_type: str) -> None:
    def on_frame(frame: dict[str, Any], harness: Any) -> None:
        if frame["type"] == "item":
            harness.proc.send_signal(signal.SIGINT)  # ignored: the runtime speaks through ``cancel``
            harness.send(Cancel(run_id="run-1", reason=reason, grace_ms=3000))

    res = execute(SLOW, on_frame=on_frame, timeout=30)
    assert res.code == 1, res.stderr
    assert res.types == ["item", "run_error", "run_result"]
    assert res.terminal["payload"] == {"error_type": error_type, "message": f"run canceled ({reason})"}
    assert res.outcome == {"status": "error", "message": f"run canceled ({reason})", "error_type": error_type}
    assert "CLEANUP-CALLED" in res.stderr
    _skipped_hooks_absent(res.stderr)


def test_sigterm_cancels_with_reason_signal(execute: Any) -> None:
    def on_frame(frame: dict[str, Any], harness: Any) -> None:
        if frame["type"] == "item":
            harness.proc.send_signal(signal.SIGTERM)

    res = execute(SLOW, on_frame=on_frame, timeout=30)
    assert res.code == 1, res.stderr
    assert res.types == ["item", "run_error", "run_result"]
    assert res.outcome == {"status": "error", "message": "run canceled (signal)", "error_type": "canceled"}
    assert "CLEANUP-CALLED" in res.stderr
    _skipped_hooks_absent(res.stderr)


def test_cancel_for_a_stubborn_script_still_ends_within_the_grace(execute: Any) -> None:
    source = """
    import asyncio

    async def run(ctx):
        await ctx.emit.item("started", {})
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                print("SWALLOWED")

    async def cleanup(ctx):
        await asyncio.sleep(60)
    """

    def on_frame(frame: dict[str, Any], harness: Any) -> None:
        if frame["type"] == "item":
            harness.send(Cancel(run_id="run-1", reason="signal", grace_ms=1500))

    res = execute(source, on_frame=on_frame, timeout=20)
    assert res.code == 1, res.stderr
    assert res.types == ["item", "run_error", "run_result"]
    assert res.outcome["error_type"] == "canceled"
    assert "SWALLOWED" in res.stderr
