"""Snapshot ids (CONTRACT_LODE): ``<Unix ns, 20 digits>-<8 random lowercase hex>``.

The one generator shared by policies (which pick a commit's id before the first attempt and reuse it on every
retry) and Lode. Lexicographic order is chronological; the random suffix keeps concurrent writers apart; within
one process ids are strictly increasing even when the clock does not advance.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

__all__ = ["SNAPSHOT_ID_PATTERN", "is_snapshot_id", "new_snapshot_id"]

SNAPSHOT_ID_PATTERN = re.compile(r"^[0-9]{20}-[0-9a-f]{8}$")

_lock = threading.Lock()
_last_ns = 0


def new_snapshot_id(now_ns: int | None = None) -> str:
    """A fresh snapshot id (``now_ns`` for tests; defaults to ``time.time_ns()``, kept strictly increasing)."""
    global _last_ns
    with _lock:
        ns = time.time_ns() if now_ns is None else now_ns
        if now_ns is None:
            ns = max(ns, _last_ns + 1)
            _last_ns = ns
    return f"{ns:020d}-{secrets.token_hex(4)}"


def is_snapshot_id(value: str) -> bool:
    """Whether ``value`` has the snapshot id format."""
    return bool(SNAPSHOT_ID_PATTERN.match(value))
