"""Snapshot ids (lode.md §4): ``<Unix ns, 20 digits>-<8 random lowercase hex>``.

Lexicographic order is chronological; the random suffix keeps concurrent writers apart. Within one process
ids are strictly increasing even when the clock does not advance.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import UTC, datetime

__all__ = [
    "SNAPSHOT_ID_RE",
    "is_snapshot_id",
    "new_snapshot_id",
    "snapshot_datetime",
    "snapshot_day",
]

SNAPSHOT_ID_RE = re.compile(r"^[0-9]{20}-[0-9a-f]{8}$")

_lock = threading.Lock()
_last_ns = 0


def new_snapshot_id(now_ns: int | None = None) -> str:
    """Create a fresh snapshot id (``now_ns`` for tests; defaults to ``time.time_ns()``)."""
    global _last_ns
    with _lock:
        ns = time.time_ns() if now_ns is None else now_ns
        if now_ns is None:
            ns = max(ns, _last_ns + 1)
            _last_ns = ns
    return f"{ns:020d}-{secrets.token_hex(4)}"


def is_snapshot_id(value: str) -> bool:
    """Whether ``value`` has the snapshot id format."""
    return bool(SNAPSHOT_ID_RE.match(value))


def snapshot_datetime(snapshot_id: str) -> datetime:
    """The UTC time encoded in a snapshot id."""
    if not is_snapshot_id(snapshot_id):
        raise ValueError(f"not a snapshot id: {snapshot_id!r}")
    ns = int(snapshot_id[:20])
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).replace(microsecond=(ns // 1000) % 1_000_000)


def snapshot_day(snapshot_id: str) -> str:
    """The UTC date (``YYYY-MM-DD``) of a snapshot id, the directory of its manifest."""
    return snapshot_datetime(snapshot_id).strftime("%Y-%m-%d")
