"""Per-run metrics counters (CONTRACT_METRICS). Thread-safe; snapshots are immutable."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["COUNTERS", "Collector"]

#: Every scalar counter of a run, in the order records and summaries print them.
COUNTERS: tuple[str, ...] = (
    "runs_started_total",
    "runs_completed_total",
    "runs_failed_total",
    "runs_crashed_total",
    "runs_canceled_total",
    "events_received_total",
    "events_persisted_total",
    "events_dropped_total",
    "events_unflushed_total",
    "executor_launch_success_total",
    "executor_launch_failure_total",
    "executor_crash_total",
    "ipc_decode_errors_total",
    "ipc_frames_received_total",
    "lode_write_success_total",
    "lode_write_failure_total",
    "lode_write_retry_total",
    "policy_flushes_total",
    "policy_flush_failures_total",
)


class Collector:
    """int64 counters keyed by the contract names; ``snapshot()`` returns a read-only copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def inc(self, name: str, by: int = 1) -> None:
        if name not in self._counters:
            raise KeyError(f"unknown counter {name!r}")
        with self._lock:
            self._counters[name] += by

    def set(self, name: str, value: int) -> None:
        if name not in self._counters:
            raise KeyError(f"unknown counter {name!r}")
        with self._lock:
            self._counters[name] = value

    def get(self, name: str) -> int:
        with self._lock:
            return self._counters[name]

    def snapshot(self) -> Mapping[str, int]:
        with self._lock:
            return MappingProxyType(dict(self._counters))
