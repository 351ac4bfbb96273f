"""Partition value escaping (lode.md §3), shared by partition directories and sidecar filenames.

The one implementation lives in :mod:`quarry_core.partitions` (the runtime validates with it, Lode writes
paths with it); this module gives it Lode's names and the validating :func:`escape_value`.
``escape`` percent-encodes (uppercase hex of the UTF-8 bytes) control bytes, DEL and the characters
``" # % ' * / : = ? \\ ^ [ ] { } < > |``; the whole values ``.`` and ``..`` become ``%2E`` and ``%2E%2E``.
Spaces and non-ASCII letters stay. ``unescape`` is plain percent-decoding, which is what pyarrow
(``segment_encoding="uri"``) and DuckDB apply, so raw Hive readers see the original values.
"""

from __future__ import annotations

from quarry_core.partitions import (
    MAX_ESCAPED_PARTITION_BYTES,
    escape_partition_value,
    partition_value_error,
    unescape_partition_value,
)

__all__ = [
    "MAX_ESCAPED_BYTES",
    "escape",
    "escape_value",
    "unescape",
]

#: Longest escaped value accepted (bytes of UTF-8), cli.md §6 step 7.
MAX_ESCAPED_BYTES = MAX_ESCAPED_PARTITION_BYTES


def escape(value: str) -> str:
    """Escape ``value`` without validating it (see :func:`escape_value`)."""
    return escape_partition_value(value)


def escape_value(value: str, *, what: str = "partition value") -> str:
    """Escape one partition value or sidecar filename.

    Raises ``ValueError`` for an empty value or one longer than :data:`MAX_ESCAPED_BYTES` once escaped;
    ``what`` names the value in the message (``source``, ``run_id``, ``filename``...).
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    error = partition_value_error(what, value)
    if error is not None:
        raise ValueError(error)
    return escape_partition_value(value)


def unescape(text: str) -> str:
    """Percent-decode an escaped value (the inverse of :func:`escape`)."""
    return unescape_partition_value(text)
