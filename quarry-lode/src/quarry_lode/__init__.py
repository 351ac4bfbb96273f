"""quarry_lode: Lode persistence for Quarry (snapshots of Hive-partitioned Parquet/JSONL on fsspec).

Public names are loaded on first use, so importing ``quarry_lode`` (and the entry-point module
``quarry_lode.hooks``) stays cheap; ``pyarrow`` is imported when a name that needs it is first touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loguru import logger

__version__ = "0.1.0"

logger.disable("quarry_lode")

if TYPE_CHECKING:
    from quarry_lode.backend import LodeBackend, LodeRunStorage, make_backend
    from quarry_lode.dataset import CommitResult, Dataset
    from quarry_lode.errors import (
        AccessDeniedError,
        ArtifactCorrupt,
        ArtifactNotFound,
        AuthError,
        ConflictError,
        DiskFullError,
        LodeError,
        NetworkError,
        NoMetricsFound,
        NotFoundError,
        PathExistsError,
        PermissionDeniedError,
        StorageTimeoutError,
        ThrottledError,
        UnknownStorageError,
        classify,
    )
    from quarry_lode.escaping import escape_value, unescape
    from quarry_lode.gc import GcCandidate, GcReport, collect_garbage
    from quarry_lode.layout import PARTITION_KEYS, TABLES, Layout, Partition
    from quarry_lode.manifest import Manifest, ManifestFile
    from quarry_lode.pointer import AdvanceResult, PointerStore, register_pointer_store
    from quarry_lode.reader import LodeDataset, open_dataset
    from quarry_lode.snapshot import new_snapshot_id

_EXPORTS: dict[str, str] = {
    "AccessDeniedError": "errors",
    "AdvanceResult": "pointer",
    "ArtifactCorrupt": "errors",
    "ArtifactNotFound": "errors",
    "AuthError": "errors",
    "CommitResult": "dataset",
    "ConflictError": "errors",
    "Dataset": "dataset",
    "DiskFullError": "errors",
    "GcCandidate": "gc",
    "GcReport": "gc",
    "Layout": "layout",
    "LodeBackend": "backend",
    "LodeDataset": "reader",
    "LodeError": "errors",
    "LodeRunStorage": "backend",
    "Manifest": "manifest",
    "ManifestFile": "manifest",
    "NetworkError": "errors",
    "NoMetricsFound": "errors",
    "NotFoundError": "errors",
    "PARTITION_KEYS": "layout",
    "Partition": "layout",
    "PathExistsError": "errors",
    "PermissionDeniedError": "errors",
    "PointerStore": "pointer",
    "StorageTimeoutError": "errors",
    "TABLES": "layout",
    "ThrottledError": "errors",
    "UnknownStorageError": "errors",
    "classify": "errors",
    "collect_garbage": "gc",
    "escape_value": "escaping",
    "make_backend": "backend",
    "new_snapshot_id": "snapshot",
    "open_dataset": "reader",
    "register_pointer_store": "pointer",
    "unescape": "escaping",
}

__all__ = [
    "PARTITION_KEYS",
    "TABLES",
    "AccessDeniedError",
    "AdvanceResult",
    "ArtifactCorrupt",
    "ArtifactNotFound",
    "AuthError",
    "CommitResult",
    "ConflictError",
    "Dataset",
    "DiskFullError",
    "GcCandidate",
    "GcReport",
    "Layout",
    "LodeBackend",
    "LodeDataset",
    "LodeError",
    "LodeRunStorage",
    "Manifest",
    "ManifestFile",
    "NetworkError",
    "NoMetricsFound",
    "NotFoundError",
    "Partition",
    "PathExistsError",
    "PermissionDeniedError",
    "PointerStore",
    "StorageTimeoutError",
    "ThrottledError",
    "UnknownStorageError",
    "__version__",
    "classify",
    "collect_garbage",
    "escape_value",
    "make_backend",
    "new_snapshot_id",
    "open_dataset",
    "register_pointer_store",
    "unescape",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quarry_lode' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"quarry_lode.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
