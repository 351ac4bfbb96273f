"""Outcome classification: the first matching rule wins (CONTRACT_RUN, outcome classification)."""

from __future__ import annotations

import signal

import attrs
from loguru import logger

from quarry_core.outcomes import Outcome
from quarry_core.runtime.ingest import IngestResult

__all__ = ["Classification", "classify", "format_duration"]


@attrs.frozen
class Classification:
    outcome: Outcome
    message: str
    error_type: str | None = None
    stack: str | None = None


def format_duration(seconds: float) -> str:
    """Go-style duration text used in messages: ``5m0s``, ``1.5s``, ``250ms``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds, 3)
    hours, rem = divmod(total, 3600)
    minutes, secs = divmod(rem, 60)
    sec_text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{sec_text}"
    if minutes:
        return f"{int(minutes)}m{sec_text}"
    return sec_text


def _exit_message(code: int) -> str:
    if code == 2:
        return "executor crashed"
    if code == 3:
        return "executor rejected invalid input"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"executor killed by signal {name}"
    return f"executor exited with unexpected code {code}"


def classify(
    ingest: IngestResult,
    *,
    exit_code: int | None,
    launch_error: str | None = None,
    browser_error: str | None = None,
    signal_name: str | None = None,
    flush_error: str | None = None,
    timeout: float | None = None,
    timed_out: bool = False,
    last_stderr_line: str = "",
) -> Classification:
    """Apply the classification rules in order. ``exit_code`` is the executor's (negative = killed by signal)."""
    if launch_error is not None:
        return Classification(Outcome.EXECUTOR_CRASH, f"failed to start executor: {launch_error}")
    if browser_error is not None:  # the explicit endpoint's health gate (runtime.md §11)
        return Classification(Outcome.EXECUTOR_CRASH, browser_error)
    if signal_name is not None:
        return Classification(Outcome.CANCELED, f"run canceled by {signal_name}", error_type="canceled")
    if ingest.version_error is not None:
        return Classification(Outcome.VERSION_MISMATCH, str(ingest.version_error))
    if ingest.stream_error is not None:
        return Classification(Outcome.EXECUTOR_CRASH, f"stream error: {ingest.stream_error}")
    if ingest.policy_error is not None:
        return Classification(Outcome.POLICY_FAILURE, f"policy error: {ingest.policy_error}")
    if flush_error is not None:
        return Classification(Outcome.POLICY_FAILURE, f"policy flush failed: {flush_error}")
    if timed_out:
        return Classification(
            Outcome.SCRIPT_ERROR, f"run exceeded timeout of {format_duration(timeout or 0)}", error_type="timeout"
        )

    code = exit_code if exit_code is not None else 2
    rr = ingest.run_result
    terminal = ingest.terminal
    if rr is not None:
        mapped = {"completed": 0, "error": 1, "crash": 2}[rr.status]
        if mapped != code:
            logger.warning("Warning: executor run_result status {} disagrees with exit code {}", rr.status, code)
    if code not in (0, 1):
        message = rr.message if rr is not None and rr.message else _exit_message(code)
        if last_stderr_line:
            message += f"; stderr: {last_stderr_line}"
        return Classification(Outcome.EXECUTOR_CRASH, message)
    if terminal is None:
        if code == 0:
            return Classification(Outcome.EXECUTOR_CRASH, "executor exited cleanly without terminal event")
        if rr is not None and rr.status == "error":
            return Classification(
                Outcome.SCRIPT_ERROR, rr.message or "script error", error_type=rr.error_type, stack=rr.stack
            )
        message = rr.message if rr is not None and rr.message else "executor exited with code 1 without terminal event"
        return Classification(Outcome.EXECUTOR_CRASH, message)
    if terminal.type == "run_complete" and code == 0:
        summary = terminal.payload.get("summary")
        return Classification(Outcome.SUCCESS, "run completed with summary" if summary else "run completed")
    if terminal.type == "run_error":
        p = terminal.payload
        return Classification(
            Outcome.SCRIPT_ERROR,
            p.get("message") or "script error",
            error_type=p.get("error_type") or "script_error",
            stack=p.get("stack"),
        )
    # run_complete with exit 1
    if rr is not None and rr.message:
        return Classification(
            Outcome.SCRIPT_ERROR, rr.message, error_type=rr.error_type or "script_error", stack=rr.stack
        )
    return Classification(Outcome.SCRIPT_ERROR, "script error", error_type="script_error")
