"""Outcome classification: the spec's input → outcome table, rule by rule."""

from __future__ import annotations

import pytest

from quarry_core.errors import VersionMismatchError
from quarry_core.outcomes import EXIT_CODES, ExitCode, Outcome, state_for
from quarry_core.protocol import Event, RunResult
from quarry_core.runtime.ingest import IngestResult
from quarry_core.runtime.outcome import classify, format_duration


def _terminal(etype: str, **payload: object) -> Event:
    return Event(event_id="e", run_id="r", seq=1, type=etype, ts="2026-11-25T00:00:00.000Z", payload=dict(payload))


def _ingest(terminal: Event | None = None, rr: RunResult | None = None, **kw: object) -> IngestResult:
    res = IngestResult(terminal=terminal, run_result=rr)
    for k, v in kw.items():
        setattr(res, k, v)
    return res


COMPLETED = RunResult(run_id="r", status="completed")


@pytest.mark.parametrize(
    ("ingest", "code", "outcome", "message"),
    [
        (_ingest(_terminal("run_complete"), COMPLETED), 0, Outcome.SUCCESS, "run completed"),
        (
            _ingest(_terminal("run_complete", summary={"n": 1}), COMPLETED),
            0,
            Outcome.SUCCESS,
            "run completed with summary",
        ),
        (_ingest(_terminal("run_error", error_type="x", message="boom")), 1, Outcome.SCRIPT_ERROR, "boom"),
        (_ingest(_terminal("run_complete")), 1, Outcome.SCRIPT_ERROR, "script error"),
        (_ingest(None, RunResult(run_id="r", status="error")), 2, Outcome.EXECUTOR_CRASH, "executor crashed"),
        (_ingest(None, COMPLETED), 0, Outcome.EXECUTOR_CRASH, "executor exited cleanly without terminal event"),
        (
            _ingest(None, RunResult(run_id="r", status="error", message="load failed")),
            1,
            Outcome.SCRIPT_ERROR,
            "load failed",
        ),
        (_ingest(None), 3, Outcome.EXECUTOR_CRASH, "executor rejected invalid input"),
        (_ingest(None), -9, Outcome.EXECUTOR_CRASH, "executor killed by signal SIGKILL"),
        (_ingest(None), 7, Outcome.EXECUTOR_CRASH, "executor exited with unexpected code 7"),
        (_ingest(_terminal("run_error", error_type="x", message="m"), COMPLETED), 0, Outcome.SCRIPT_ERROR, "m"),
    ],
)
def test_executor_verdict_rules(ingest: IngestResult, code: int, outcome: Outcome, message: str) -> None:
    c = classify(ingest, exit_code=code)
    assert c.outcome is outcome
    assert c.message == message


def test_rule_order() -> None:
    everything = _ingest(
        _terminal("run_complete"),
        COMPLETED,
        version_error=VersionMismatchError("2.0.0", "1.0.0"),
        stream_error="bad",
        policy_error="disk",
    )
    assert classify(everything, exit_code=0, launch_error="nope").message == "failed to start executor: nope"
    assert classify(everything, exit_code=0, signal_name="SIGINT").outcome is Outcome.CANCELED
    assert classify(everything, exit_code=0).outcome is Outcome.VERSION_MISMATCH
    everything.version_error = None
    assert classify(everything, exit_code=0).message == "stream error: bad"
    everything.stream_error = None
    assert classify(everything, exit_code=0).message == "policy error: disk"
    everything.policy_error = None
    c = classify(everything, exit_code=0, flush_error="full")
    assert (c.outcome, c.message) == (Outcome.POLICY_FAILURE, "policy flush failed: full")
    c = classify(everything, exit_code=1, timeout=300, timed_out=True)
    assert (c.outcome, c.message, c.error_type) == (Outcome.SCRIPT_ERROR, "run exceeded timeout of 5m0s", "timeout")


def test_stderr_tail_is_appended_to_crash_messages() -> None:
    c = classify(_ingest(None), exit_code=2, last_stderr_line="Traceback: boom")
    assert c.message == "executor crashed; stderr: Traceback: boom"


def test_exit_codes_and_states() -> None:
    assert {o.value: int(EXIT_CODES[o]) for o in Outcome} == {
        "success": 0,
        "script_error": 1,
        "executor_crash": 2,
        "policy_failure": 3,
        "version_mismatch": 3,
        "canceled": 130,
    }
    assert (ExitCode.USAGE, ExitCode.INTERNAL, ExitCode.SIGTERM) == (4, 70, 143)
    assert [state_for(o) for o in (None, Outcome.SUCCESS, Outcome.CANCELED, Outcome.POLICY_FAILURE)] == [
        "running",
        "succeeded",
        "canceled",
        "failed",
    ]


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m0s"), (1.5, "1.5s"), (0.25, "250ms"), (3661, "1h1m1s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
