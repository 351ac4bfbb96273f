"""Quarry: a contract-first web extraction runtime.

Scripts use :class:`QuarryContext` and the other SDK types exported here; plugins use :data:`hookimpl` and the
records in :mod:`quarry_core.registrations`.
"""

from __future__ import annotations

import pluggy
from loguru import logger

from quarry_core.batch import EnqueueBatcher, StorageBatcher, create_batcher, create_storage_batcher
from quarry_core.errors import (
    EmitValidationError,
    QuarryError,
    SinkFailedError,
    StorageFilenameError,
    StoragePutError,
    StorageSizeError,
    TerminalEventError,
)
from quarry_core.protocol.constants import CONTRACT_VERSION, DROPPABLE_EVENT_TYPES
from quarry_core.sdk import (
    EmitAPI,
    MemoryAPI,
    MemorySnapshot,
    MemoryThresholds,
    MemoryUsage,
    PrepareResult,
    PressureLevel,
    ProxyRotation,
    QuarryContext,
    RedactedProxy,
    RunMeta,
    StorageAPI,
    StoragePutResult,
    TerminalSignal,
)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("quarry")

logger.disable("quarry_core")

__all__ = [
    "CONTRACT_VERSION",
    "DROPPABLE_EVENT_TYPES",
    "EmitAPI",
    "EmitValidationError",
    "EnqueueBatcher",
    "MemoryAPI",
    "MemorySnapshot",
    "MemoryThresholds",
    "MemoryUsage",
    "PrepareResult",
    "PressureLevel",
    "ProxyRotation",
    "QuarryContext",
    "QuarryError",
    "RedactedProxy",
    "RunMeta",
    "SinkFailedError",
    "StorageAPI",
    "StorageBatcher",
    "StorageFilenameError",
    "StoragePutError",
    "StoragePutResult",
    "StorageSizeError",
    "TerminalEventError",
    "TerminalSignal",
    "__version__",
    "create_batcher",
    "create_storage_batcher",
    "hookimpl",
]
