"""The executor <-> runtime protocol: frame types, validation, CBOR codec and framing (CONTRACT_IPC).

The codec names load lazily so that importing constants or frame types does not import ``cbor2``.
"""

from typing import TYPE_CHECKING, Any

from quarry_core.protocol.constants import (
    CONTRACT_VERSION,
    CONTROL_FRAME_TYPES,
    DROPPABLE_EVENT_TYPES,
    EVENT_TYPES,
    EXECUTOR_FRAME_TYPES,
    LENGTH_PREFIX_SIZE,
    LOG_LEVELS,
    MAX_ARTIFACT_SIZE,
    MAX_CHUNK_SIZE,
    MAX_FILE_WRITE_SIZE,
    MAX_FRAME_SIZE,
    MAX_PAYLOAD_SIZE,
    MAX_RUN_REQUEST_LINE,
    MAX_SIDECAR_SIZE,
    MAX_STACK_SIZE,
    TERMINAL_EVENT_TYPES,
)
from quarry_core.protocol.frames import (
    ArtifactChunk,
    Cancel,
    ControlFrame,
    Event,
    ExecutorFrame,
    FileWrite,
    FileWriteAck,
    FileWriteChunk,
    ProxyUpdate,
    RunRequest,
    RunRequestError,
    RunRequestFrame,
    RunResult,
    Shutdown,
    check_contract_version,
    parse_control_frame,
    parse_executor_frame,
    validate_payload,
)
from quarry_core.protocol.values import (
    check_json_value,
    format_ts,
    json_value_error,
    normalise_ts,
    parse_version,
    sidecar_filename_error,
    utc_now_ts,
)

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
    "ArtifactChunk",
    "Cancel",
    "ControlFrame",
    "EndOfStream",
    "Event",
    "ExecutorFrame",
    "FileWrite",
    "FileWriteAck",
    "FileWriteChunk",
    "FrameReader",
    "ProxyUpdate",
    "RunRequest",
    "RunRequestError",
    "RunRequestFrame",
    "RunResult",
    "Shutdown",
    "TruncatedFrame",
    "check_contract_version",
    "check_json_value",
    "decode_payload",
    "encode_frame",
    "encode_map",
    "event_size",
    "format_ts",
    "json_value_error",
    "normalise_ts",
    "parse_control_frame",
    "parse_executor_frame",
    "parse_version",
    "read_frame_sync",
    "sidecar_filename_error",
    "utc_now_ts",
    "validate_payload",
]

_CODEC_NAMES = frozenset(
    {
        "EndOfStream",
        "FrameReader",
        "TruncatedFrame",
        "decode_payload",
        "encode_frame",
        "encode_map",
        "event_size",
        "read_frame_sync",
    }
)

if TYPE_CHECKING:
    from quarry_core.protocol.codec import (
        EndOfStream,
        FrameReader,
        TruncatedFrame,
        decode_payload,
        encode_frame,
        encode_map,
        event_size,
        read_frame_sync,
    )


def __getattr__(name: str) -> Any:
    if name in _CODEC_NAMES:
        from quarry_core.protocol import codec

        return getattr(codec, name)
    raise AttributeError(f"module 'quarry_core.protocol' has no attribute {name!r}")
