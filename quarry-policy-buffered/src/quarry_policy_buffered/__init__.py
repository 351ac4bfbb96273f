"""quarry_policy_buffered: the ``buffered`` and ``streaming`` ingestion policies (policies.md §5, §6).

Registered through the ``quarry`` entry point ``policy-buffered`` (:mod:`quarry_policy_buffered.hooks`).
"""

from loguru import logger as _logger

from quarry_policy_buffered.buffered import BufferedPolicy, event_size
from quarry_policy_buffered.settings import (
    CHUNK_BYTE_CAP,
    FLUSH_MODES,
    FLUSH_TRIGGERS,
    STREAMING_BYTE_CAP,
    STREAMING_ITEM_CAP,
    BufferedSettings,
    StreamingSettings,
    validate_buffered,
    validate_streaming,
)
from quarry_policy_buffered.streaming import StreamingPolicy

__version__ = "0.1.0"

_logger.disable("quarry_policy_buffered")

__all__ = [
    "CHUNK_BYTE_CAP",
    "FLUSH_MODES",
    "FLUSH_TRIGGERS",
    "STREAMING_BYTE_CAP",
    "STREAMING_ITEM_CAP",
    "BufferedPolicy",
    "BufferedSettings",
    "StreamingPolicy",
    "StreamingSettings",
    "__version__",
    "event_size",
    "validate_buffered",
    "validate_streaming",
]
