"""Partition value escaping (CONTRACT_LODE escaping): the one implementation the runtime validates with and
Lode writes paths with.

``escape_partition_value`` percent-encodes (uppercase hex of the UTF-8 bytes) control bytes 0x00-0x1F and 0x7F
and ``" # % ' * / : = ? \\ ^ [ ] { } < > |``; the whole values ``.`` and ``..`` become ``%2E`` and ``%2E%2E``;
spaces and non-ASCII letters stay. Decoding is plain percent-decoding.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = [
    "MAX_ESCAPED_PARTITION_BYTES",
    "PARTITION_KEYS",
    "escape_partition_value",
    "partition_value_error",
    "unescape_partition_value",
]

PARTITION_KEYS = ("source", "category", "day", "run_id", "event_type")
MAX_ESCAPED_PARTITION_BYTES = 200

_SPECIAL = frozenset("\"#%'*/:=?\\^[]{}<>|")
_TABLE = {c: f"%{c:02X}" for c in range(0x20)} | {0x7F: "%7F"} | {ord(c): f"%{ord(c):02X}" for c in _SPECIAL}


def escape_partition_value(value: str) -> str:
    """Escape one partition value (or sidecar filename) so it stays inside its directory."""
    if value == ".":
        return "%2E"
    if value == "..":
        return "%2E%2E"
    return value.translate(_TABLE)


def unescape_partition_value(value: str) -> str:
    return unquote(value, encoding="utf-8", errors="surrogateescape")


def partition_value_error(key: str, value: str) -> str | None:
    """Why ``value`` cannot be used for partition ``key`` (empty, or above 200 bytes escaped), else ``None``."""
    if not value:
        return f"{key} must not be empty"
    escaped = escape_partition_value(value)
    if len(escaped.encode("utf-8", "surrogatepass")) > MAX_ESCAPED_PARTITION_BYTES:
        return f"{key} is longer than {MAX_ESCAPED_PARTITION_BYTES} bytes once escaped"
    return None
