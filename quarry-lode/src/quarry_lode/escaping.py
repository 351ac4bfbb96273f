"""Partition value escaping (lode.md §3), shared by partition directories and sidecar filenames.

``escape_value`` percent-encodes (uppercase hex of the UTF-8 bytes) control bytes, DEL and the characters
``" # % ' * / : = ? \\ ^ [ ] { } < > |``; the whole values ``.`` and ``..`` become ``%2E`` and ``%2E%2E``.
Spaces and non-ASCII letters stay. ``unescape`` is plain percent-decoding, which is what pyarrow
(``segment_encoding="uri"``) and DuckDB apply, so raw Hive readers see the original values.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = [
    "MAX_ESCAPED_BYTES",
    "escape",
    "escape_value",
    "unescape",
]

#: Longest escaped value accepted (bytes of UTF-8), cli.md §6 step 7.
MAX_ESCAPED_BYTES = 200

_SPECIAL = frozenset("\"#%'*/:=?\\^[]{}<>|")


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or code == 0x7F or ch in _SPECIAL


def escape(value: str) -> str:
    """Escape ``value`` without validating it (see :func:`escape_value`)."""
    if value == ".":
        return "%2E"
    if value == "..":
        return "%2E%2E"
    if not any(_needs_escape(ch) for ch in value):
        return value
    out: list[str] = []
    for ch in value:
        if _needs_escape(ch):
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def escape_value(value: str, *, what: str = "partition value") -> str:
    """Escape one partition value or sidecar filename.

    Raises ``ValueError`` for an empty value or one longer than :data:`MAX_ESCAPED_BYTES` once escaped.
    ``what`` names the value in the message (``source``, ``run_id``, ``filename``...).
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    escaped = escape(value)
    size = len(escaped.encode("utf-8"))
    if size > MAX_ESCAPED_BYTES:
        raise ValueError(f"{what} is {size} bytes escaped (limit {MAX_ESCAPED_BYTES}): {value[:40]!r}...")
    return escaped


def unescape(text: str) -> str:
    """Percent-decode an escaped value (the inverse of :func:`escape`)."""
    return unquote(text, encoding="utf-8", errors="strict")
