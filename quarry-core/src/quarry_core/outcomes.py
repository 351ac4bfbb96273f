"""Run outcomes, process exit codes and run-record states (CONTRACT_RUN). Tests pin every number."""

from __future__ import annotations

import enum

__all__ = ["EXIT_CODES", "ExitCode", "Outcome", "state_for"]


class Outcome(enum.StrEnum):
    """How a run ended."""

    SUCCESS = "success"
    SCRIPT_ERROR = "script_error"
    EXECUTOR_CRASH = "executor_crash"
    POLICY_FAILURE = "policy_failure"
    VERSION_MISMATCH = "version_mismatch"
    CANCELED = "canceled"


class ExitCode(enum.IntEnum):
    """Exit codes of ``quarry run``."""

    SUCCESS = 0
    SCRIPT_ERROR = 1
    EXECUTOR_CRASH = 2
    POLICY_FAILURE = 3  # also version_mismatch
    USAGE = 4  # usage or configuration error: nothing executed, nothing written
    INTERNAL = 70  # a bug in the runtime
    SIGINT = 130
    SIGTERM = 143


#: outcome -> exit code (``canceled`` depends on the signal: 130 for SIGINT, 143 for SIGTERM).
EXIT_CODES: dict[Outcome, int] = {
    Outcome.SUCCESS: ExitCode.SUCCESS,
    Outcome.SCRIPT_ERROR: ExitCode.SCRIPT_ERROR,
    Outcome.EXECUTOR_CRASH: ExitCode.EXECUTOR_CRASH,
    Outcome.POLICY_FAILURE: ExitCode.POLICY_FAILURE,
    Outcome.VERSION_MISMATCH: ExitCode.POLICY_FAILURE,
    Outcome.CANCELED: ExitCode.SIGINT,
}


def state_for(outcome: Outcome | None) -> str:
    """Run-record state: ``running`` before an outcome, ``succeeded``, ``canceled`` or ``failed``."""
    if outcome is None:
        return "running"
    if outcome is Outcome.SUCCESS:
        return "succeeded"
    if outcome is Outcome.CANCELED:
        return "canceled"
    return "failed"
