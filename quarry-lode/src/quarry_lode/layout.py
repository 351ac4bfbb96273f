"""Where everything lives under a dataset (lode.md §2).

``D = <root>/datasets/<dataset>``; partitions are Hive directories
``source=…/category=…/day=…/run_id=…/event_type=…`` with values escaped by :mod:`quarry_lode.escaping`.
Paths here are plain ``/``-joined strings in the filesystem's own form (no protocol).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import attrs

from quarry_core.partitions import PARTITION_KEYS
from quarry_lode.escaping import escape_value, unescape
from quarry_lode.snapshot import is_snapshot_id, snapshot_day

__all__ = [
    "DATASET_NAME_RE",
    "PARTITION_KEYS",
    "TABLES",
    "TABLE_EVENT_TYPES",
    "Layout",
    "Partition",
    "data_extension",
    "is_data_file",
    "parse_data_filename",
    "parse_partition",
    "validate_dataset_name",
]

TABLES: tuple[str, ...] = ("events", "chunks", "metrics", "runs", "outbox")
#: Tables whose partitions have a fixed ``event_type``.
TABLE_EVENT_TYPES: Mapping[str, str] = {
    "chunks": "artifact",
    "metrics": "metrics",
    "runs": "run",
    "outbox": "adapter_outbox",
}
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DAY_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DATA_FILE_RE = re.compile(r"^part-([0-9]{20}-[0-9a-f]{8})\.(parquet|jsonl|jsonl\.gz|jsonl\.zst)$")


def validate_dataset_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise ``ValueError``."""
    if not isinstance(name, str) or not DATASET_NAME_RE.match(name):
        raise ValueError(f"invalid dataset name {name!r}: must match {DATASET_NAME_RE.pattern}")
    return name


@attrs.frozen
class Partition:
    """The five unescaped partition values of one data file."""

    source: str
    category: str
    day: str
    run_id: str
    event_type: str

    def values(self) -> dict[str, str]:
        """The values keyed by :data:`PARTITION_KEYS`."""
        return {k: getattr(self, k) for k in PARTITION_KEYS}

    def relpath(self) -> str:
        """``source=…/category=…/day=…/run_id=…/event_type=…``; raises ``ValueError`` for invalid values."""
        return _relpath(self)


@functools.lru_cache(maxsize=4096)
def _relpath(partition: Partition) -> str:
    """:meth:`Partition.relpath`, cached: a run's commits name its few partitions over and over."""
    if not _DAY_RE.match(partition.day):
        raise ValueError(f"day must be YYYY-MM-DD, got {partition.day!r}")
    return "/".join(f"{k}={escape_value(getattr(partition, k), what=k)}" for k in PARTITION_KEYS)


def data_extension(codec: str, compression: str) -> str:
    """File extension for a codec/compression pair: ``parquet``, ``jsonl``, ``jsonl.gz``, ``jsonl.zst``."""
    if codec == "parquet":
        return "parquet"
    return {"none": "jsonl", "gzip": "jsonl.gz", "zstd": "jsonl.zst"}[compression]


def parse_data_filename(name: str) -> tuple[str, str] | None:
    """``part-<id>.<ext>`` → ``(snapshot_id, ext)``; ``None`` for anything else."""
    m = _DATA_FILE_RE.match(name)
    return (m.group(1), m.group(2)) if m else None


def parse_partition(relpath: str) -> Partition | None:
    """Parse ``source=…/…/event_type=…`` (escaped) into a :class:`Partition`; ``None`` if malformed."""
    parts = relpath.strip("/").split("/")
    if len(parts) != len(PARTITION_KEYS):
        return None
    values: dict[str, str] = {}
    for key, part in zip(PARTITION_KEYS, parts, strict=True):
        prefix = f"{key}="
        if not part.startswith(prefix):
            return None
        values[key] = unescape(part[len(prefix) :])
    return Partition(**values)


@attrs.frozen
class Layout:
    """Paths of one dataset ``D = <root>/datasets/<dataset>`` (``root`` in the filesystem's form)."""

    root: str
    dataset: str = "quarry"

    @property
    def base(self) -> str:
        """The dataset directory ``D``."""
        return f"{self.root.rstrip('/')}/datasets/{self.dataset}"

    def table_dir(self, table: str) -> str:
        """``D/<table>``."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r} (valid: {', '.join(TABLES)})")
        return f"{self.base}/{table}"

    def data_relpath(self, table: str, partition: Partition, snapshot_id: str, ext: str) -> str:
        """``<table>/<P>/part-<id>.<ext>``, relative to ``D`` (as listed in manifests)."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r} (valid: {', '.join(TABLES)})")
        return f"{table}/{partition.relpath()}/part-{snapshot_id}.{ext}"

    def manifest_relpath(self, snapshot_id: str) -> str:
        """``_snapshots/<YYYY-MM-DD>/<id>.json`` relative to ``D``."""
        return f"_snapshots/{snapshot_day(snapshot_id)}/{snapshot_id}.json"

    def manifest_path(self, snapshot_id: str) -> str:
        """Absolute manifest path of a snapshot."""
        return f"{self.base}/{self.manifest_relpath(snapshot_id)}"

    @property
    def snapshots_dir(self) -> str:
        """``D/_snapshots``."""
        return f"{self.base}/_snapshots"

    @property
    def pointer_path(self) -> str:
        """``D/_latest``."""
        return f"{self.base}/_latest"

    @property
    def lock_path(self) -> str:
        """``D/_latest.lock`` (local disks only)."""
        return f"{self.base}/_latest.lock"

    def path(self, relpath: str) -> str:
        """Absolute path of something relative to ``D``."""
        return f"{self.base}/{relpath}"

    def files_relpath(self, source: str, category: str, day: str, run_id: str) -> str:
        """``files/source=…/category=…/day=…/run_id=…`` relative to ``D``: a run's sidecar directory."""
        return "files/" + "/".join(
            f"{k}={escape_value(v, what=k)}"
            for k, v in (("source", source), ("category", category), ("day", day), ("run_id", run_id))
        )

    def sidecar_key(self, source: str, category: str, day: str, run_id: str, filename: str) -> str:
        """A sidecar's key: its path relative to the storage root."""
        name = escape_value(filename, what="filename")
        return f"datasets/{self.dataset}/{self.files_relpath(source, category, day, run_id)}/{name}"


def is_data_file(name: str) -> bool:
    """Whether a basename is a Lode data file."""
    parsed = parse_data_filename(name)
    return parsed is not None and is_snapshot_id(parsed[0])
