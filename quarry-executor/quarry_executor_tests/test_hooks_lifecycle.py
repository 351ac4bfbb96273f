"""Hook order (runtime.md §14.2), prepare results and crash paths."""

from __future__ import annotations

from typing import Any

import pytest

NO_BROWSER = {"QUARRY_BROWSER_EXECUTABLE": "/nonexistent/chromium"}

HOOKS = """
calls = []

def prepare(job, run):
    calls.append(("prepare", dict(job), run.run_id))
    from quarry_core import PrepareResult
    return PrepareResult.proceed(job={**job, "replaced": True})

async def before_run(ctx):
    calls.append(("before_run",))

async def after_run(ctx):
    calls.append(("after_run",))

def on_error(error, ctx):
    calls.append(("on_error", type(error).__name__))
    raise RuntimeError("on_error failures are swallowed")

async def before_terminal(signal, ctx):
    calls.append(("before_terminal", signal.outcome, type(signal.error).__name__ if signal.error else None))
    await ctx.emit.item("calls", {"calls": [list(c) for c in calls], "job": ctx.job})

async def cleanup(ctx):
    print("CLEANUP-CALLED")
    raise RuntimeError("cleanup failures are swallowed")
"""


@pytest.mark.browser
def test_hook_order_success(execute: Any) -> None:
    res = execute(HOOKS + "\nasync def run(ctx):\n    calls.append(('run',))\n", job={"q": 1})
    assert res.code == 0, res.stderr
    assert res.types == ["item", "run_complete", "run_result"]
    data = res.item("calls")
    assert data["calls"] == [
        ["prepare", {"q": 1}, "run-1"],
        ["before_run"],
        ["run"],
        ["after_run"],
        ["before_terminal", "completed", None],
    ]
    assert data["job"] == {"q": 1, "replaced": True}
    assert "CLEANUP-CALLED" in res.stderr


@pytest.mark.browser
def test_hook_order_error(execute: Any) -> None:
    res = execute(
        HOOKS + "\nasync def run(ctx):\n    calls.append(('run',))\n    raise KeyError('sku')\n", error_snapshot=False
    )
    assert res.code == 1, res.stderr
    assert res.types == ["item", "run_error", "run_result"]
    assert res.item("calls")["calls"] == [
        ["prepare", {}, "run-1"],
        ["before_run"],
        ["run"],
        ["on_error", "KeyError"],
        ["before_terminal", "error", "KeyError"],
    ]
    assert res.terminal["payload"]["error_type"] == "script_error"
    assert res.terminal["payload"]["message"] == "'sku'"
    assert "CLEANUP-CALLED" in res.stderr


@pytest.mark.browser
def test_on_error_skipped_after_terminal_and_before_terminal_may_end_the_run(execute: Any) -> None:
    res = execute(
        """
        async def run(ctx):
            await ctx.emit.run_error("blocked", "captcha")
            raise RuntimeError("after the terminal")

        def on_error(error, ctx):
            print("ON-ERROR-CALLED")

        def before_terminal(signal, ctx):
            print("BEFORE-TERMINAL-CALLED")
        """
    )
    assert res.code == 1
    assert res.types == ["run_error", "run_result"]
    assert res.outcome["error_type"] == "blocked"
    assert "ON-ERROR-CALLED" not in res.stderr and "BEFORE-TERMINAL-CALLED" not in res.stderr

    res = execute(
        """
        async def run(ctx):
            pass

        async def before_terminal(signal, ctx):
            await ctx.emit.run_complete({"by": "before_terminal"})
        """
    )
    assert res.code == 0
    assert res.types == ["run_complete", "run_result"]
    assert res.terminal["payload"] == {"summary": {"by": "before_terminal"}}


@pytest.mark.parametrize(
    ("ret", "reason"),
    [("PrepareResult.skip(reason='closed today')", "closed today"), ("{'action': 'skip'}", None)],
)
def test_prepare_skip_launches_no_browser(execute: Any, ret: str, reason: str | None) -> None:
    res = execute(
        f"""
        from quarry_core import PrepareResult

        async def prepare(job, run):
            return {ret}

        async def before_run(ctx):
            print("BEFORE-RUN-CALLED")

        async def run(ctx):
            print("RUN-CALLED")

        def cleanup(ctx):
            print("CLEANUP-CALLED")
        """,
        env=NO_BROWSER,
    )
    assert res.code == 0, res.stderr
    assert res.types == ["run_complete", "run_result"]
    summary: dict[str, Any] = {"skipped": True}
    if reason:
        summary["reason"] = reason
    assert res.terminal["payload"] == {"summary": summary}
    assert res.outcome == {"status": "completed", "message": "run completed with summary"}
    for marker in ("BEFORE-RUN-CALLED", "RUN-CALLED", "CLEANUP-CALLED"):
        assert marker not in res.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("raise LookupError('no such job')", "prepare hook failed: LookupError: no such job"),
        ("return None", 'prepare hook must return PrepareResult(action="continue" | "skip"), got: None'),
        ("return {'action': 'later'}", "prepare hook returned unrecognized action: later"),
    ],
)
def test_prepare_failures_crash_without_terminal(execute: Any, body: str, message: str) -> None:
    res = execute(f"def prepare(job, run):\n    {body}\n\nasync def run(ctx):\n    pass\n", env=NO_BROWSER)
    assert res.code == 2, res.stderr
    assert res.types == ["run_result"]
    assert res.outcome["status"] == "crash"
    assert res.outcome["message"] == message


def test_browser_failure_is_a_crash(execute: Any) -> None:
    res = execute("async def run(ctx):\n    print('RUN-CALLED')\n", env=NO_BROWSER)
    assert res.code == 2
    assert res.types == ["run_result"]
    assert res.outcome["status"] == "crash"
    assert res.outcome["message"].startswith("browser launch failed:")
    assert "QUARRY_BROWSER_EXECUTABLE is not an executable file: /nonexistent/chromium" in res.outcome["message"]
    assert "RUN-CALLED" not in res.stderr
