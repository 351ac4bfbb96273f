"""Wire constants of contract 1.0.0 (docs/contracts/CONTRACT_IPC.md). Tests pin every number."""

from __future__ import annotations

__all__ = [
    "CONTRACT_VERSION",
    "CONTROL_FRAME_TYPES",
    "DROPPABLE_EVENT_TYPES",
    "EVENT_TYPES",
    "EXECUTOR_FRAME_TYPES",
    "LENGTH_PREFIX_SIZE",
    "LOG_LEVELS",
    "MAX_ARTIFACT_SIZE",
    "MAX_CHUNK_SIZE",
    "MAX_FILE_WRITE_SIZE",
    "MAX_FRAME_SIZE",
    "MAX_PAYLOAD_SIZE",
    "MAX_RUN_REQUEST_LINE",
    "MAX_SIDECAR_SIZE",
    "MAX_STACK_SIZE",
    "TERMINAL_EVENT_TYPES",
]

CONTRACT_VERSION = "1.0.0"

LENGTH_PREFIX_SIZE = 4
MAX_FRAME_SIZE = 16 * 1024 * 1024  # prefix included
MAX_PAYLOAD_SIZE = MAX_FRAME_SIZE - LENGTH_PREFIX_SIZE
MAX_CHUNK_SIZE = 8 * 1024 * 1024
MAX_FILE_WRITE_SIZE = 8 * 1024 * 1024
MAX_ARTIFACT_SIZE = 1024 * 1024 * 1024
MAX_SIDECAR_SIZE = 1024 * 1024 * 1024
MAX_RUN_REQUEST_LINE = 16 * 1024 * 1024
MAX_STACK_SIZE = 64 * 1024

EVENT_TYPES = frozenset(
    {"item", "artifact", "checkpoint", "enqueue", "rotate_proxy", "log", "run_error", "run_complete"}
)
TERMINAL_EVENT_TYPES = frozenset({"run_error", "run_complete"})
DROPPABLE_EVENT_TYPES = frozenset({"log", "enqueue", "rotate_proxy"})
LOG_LEVELS = ("debug", "info", "warn", "error")

EXECUTOR_FRAME_TYPES = EVENT_TYPES | {"artifact_chunk", "file_write", "file_write_chunk", "run_result"}
CONTROL_FRAME_TYPES = frozenset({"file_write_ack", "proxy_update", "cancel", "run_request", "shutdown"})
