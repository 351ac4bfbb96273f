"""Snapshot manifests (lode.md §5): the JSON commit record listing a snapshot's files.

A snapshot exists iff its manifest exists at ``D/_snapshots/<YYYY-MM-DD>/<snapshot_id>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from quarry_lode.layout import PARTITION_KEYS

__all__ = [
    "FORMAT_VERSION",
    "SCHEMA_NAME",
    "Manifest",
    "ManifestFile",
]

SCHEMA_NAME = "lode-manifest"
FORMAT_VERSION = "1.0.0"


@attrs.frozen
class ManifestFile:
    """One data file of a snapshot; ``path`` is relative to the dataset directory ``D``."""

    path: str
    table: str
    partition: Mapping[str, str]
    row_count: int
    size_bytes: int
    sha256: str
    min_ts: str | None = None
    max_ts: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON object for this file (``min_ts``/``max_ts`` only when known)."""
        d: dict[str, Any] = {
            "path": self.path,
            "table": self.table,
            "partition": {k: self.partition[k] for k in PARTITION_KEYS},
            "row_count": self.row_count,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }
        if self.min_ts is not None:
            d["min_ts"] = self.min_ts
        if self.max_ts is not None:
            d["max_ts"] = self.max_ts
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ManifestFile:
        """Parse one entry of ``files``."""
        return cls(
            path=str(d["path"]),
            table=str(d["table"]),
            partition={str(k): str(v) for k, v in dict(d["partition"]).items()},
            row_count=int(d["row_count"]),
            size_bytes=int(d["size_bytes"]),
            sha256=str(d["sha256"]),
            min_ts=d.get("min_ts"),
            max_ts=d.get("max_ts"),
        )


@attrs.frozen
class Manifest:
    """A committed snapshot."""

    dataset_id: str
    snapshot_id: str
    parent_snapshot_id: str | None
    created_at: str
    codec: str
    compressor: str
    files: Sequence[ManifestFile]
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    partitioner: str = "hive"
    partition_keys: Sequence[str] = PARTITION_KEYS

    @property
    def row_count(self) -> int:
        """Rows over all files."""
        return sum(f.row_count for f in self.files)

    @property
    def min_timestamp(self) -> str | None:
        """Smallest ``min_ts`` of the files, if any."""
        values = [f.min_ts for f in self.files if f.min_ts is not None]
        return min(values) if values else None

    @property
    def max_timestamp(self) -> str | None:
        """Largest ``max_ts`` of the files, if any."""
        values = [f.max_ts for f in self.files if f.max_ts is not None]
        return max(values) if values else None

    def to_json(self) -> dict[str, Any]:
        """The manifest document."""
        d: dict[str, Any] = {
            "schema_name": SCHEMA_NAME,
            "format_version": FORMAT_VERSION,
            "dataset_id": self.dataset_id,
            "snapshot_id": self.snapshot_id,
            "parent_snapshot_id": self.parent_snapshot_id,
            "created_at": self.created_at,
            "codec": self.codec,
            "compressor": self.compressor,
            "partitioner": self.partitioner,
            "partition_keys": list(self.partition_keys),
            "files": [f.to_json() for f in self.files],
            "row_count": self.row_count,
        }
        if self.min_timestamp is not None:
            d["min_timestamp"] = self.min_timestamp
        if self.max_timestamp is not None:
            d["max_timestamp"] = self.max_timestamp
        d["metadata"] = dict(self.metadata)
        return d

    def to_bytes(self) -> bytes:
        """Serialised manifest: compact UTF-8 JSON on one line and a newline (``jq .`` pretty-prints it)."""
        return (json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Manifest:
        """Parse a manifest document; ``ValueError`` if it is not one."""
        if d.get("schema_name") != SCHEMA_NAME:
            raise ValueError(f"not a Lode manifest: schema_name {d.get('schema_name')!r}")
        return cls(
            dataset_id=str(d["dataset_id"]),
            snapshot_id=str(d["snapshot_id"]),
            parent_snapshot_id=d.get("parent_snapshot_id"),
            created_at=str(d["created_at"]),
            codec=str(d["codec"]),
            compressor=str(d["compressor"]),
            files=[ManifestFile.from_json(f) for f in d.get("files", [])],
            metadata=dict(d.get("metadata") or {}),
            partitioner=str(d.get("partitioner", "hive")),
            partition_keys=tuple(d.get("partition_keys", PARTITION_KEYS)),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse serialised manifest bytes."""
        return cls.from_json(json.loads(data.decode("utf-8")))
