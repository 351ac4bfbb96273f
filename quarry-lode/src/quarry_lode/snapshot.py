"""Snapshot ids (lode.md §4): ``<Unix ns, 20 digits>-<8 random lowercase hex>``.

Lexicographic order is chronological; the random suffix keeps concurrent writers apart. Within one process
ids are strictly increasing even when the clock does not advance.
"""

from __future__ import annotations

from datetime import UTC, datetime

from quarry_core.snapshot_ids import SNAPSHOT_ID_PATTERN, is_snapshot_id, new_snapshot_id

__all__ = [
    "SNAPSHOT_ID_RE",
    "is_snapshot_id",
    "new_snapshot_id",
    "snapshot_datetime",
    "snapshot_day",
]

SNAPSHOT_ID_RE = SNAPSHOT_ID_PATTERN


def snapshot_datetime(snapshot_id: str) -> datetime:
    """The UTC time encoded in a snapshot id."""
    if not is_snapshot_id(snapshot_id):
        raise ValueError(f"not a snapshot id: {snapshot_id!r}")
    ns = int(snapshot_id[:20])
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(microsecond=(ns // 1000) % 1_000_000)


def snapshot_day(snapshot_id: str) -> str:
    """The UTC date (``YYYY-MM-DD``) of a snapshot id, the directory of its manifest."""
    return snapshot_datetime(snapshot_id).strftime("%Y-%m-%d")
