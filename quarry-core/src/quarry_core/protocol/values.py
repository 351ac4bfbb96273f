"""Checks for the JSON data model that every payload value must stay within (CONTRACT_IPC §2)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "check_json_value",
    "format_ts",
    "json_value_error",
    "normalise_ts",
    "parse_version",
    "sidecar_filename_error",
    "utc_now_ts",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_MAX_DEPTH = 200  # nesting levels below the top value
_VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:[-+].*)?$")


def json_value_error(value: Any, path: str = "value", _depth: int = 0) -> str | None:
    """Return why ``value`` leaves the JSON data model, or ``None`` when it is fine.

    Allowed: text, integers in signed 64-bit range, finite floats, booleans, None, lists and text-keyed maps.
    """
    if _in_model(value, _depth):
        return None
    return _value_error(value, path, _depth)


def _in_model(value: Any, depth: int) -> bool:
    """Whether ``value`` is inside the JSON data model, built of the exact built-in types a decoded frame holds.

    The fast check every event's payload gets: no path text is built and scalars are checked inline. ``False``
    also for what is fine but unusual (subclasses, tuples, other mappings); :func:`_value_error` decides then.
    """
    if depth > _MAX_DEPTH:
        return False
    t = type(value)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                return False
            tv = type(v)
            if tv is str or v is None or tv is bool:
                continue
            if tv is int:
                if _INT64_MIN <= v <= _INT64_MAX:
                    continue
                return False
            if tv is float:
                if v - v == 0.0:  # finite: inf - inf and nan - nan are nan
                    continue
                return False
            if not _in_model(v, depth + 1):
                return False
        return True
    if t is list:
        for v in value:
            tv = type(v)
            if tv is str or v is None or tv is bool:
                continue
            if tv is int:
                if _INT64_MIN <= v <= _INT64_MAX:
                    continue
                return False
            if tv is float:
                if v - v == 0.0:
                    continue
                return False
            if not _in_model(v, depth + 1):
                return False
        return True
    if t is str or value is None or t is bool:
        return True
    if t is int:
        return bool(_INT64_MIN <= value <= _INT64_MAX)
    if t is float:
        return bool(value - value == 0.0)
    return False


def _value_error(value: Any, path: str, _depth: int) -> str | None:
    """:func:`json_value_error` the slow way: every rule, with the path of the first offending element (each
    child value gets the fast check first)."""
    if _depth > _MAX_DEPTH:
        return f"{path}: nested too deeply"
    if value is None or isinstance(value, (str, bool)):
        return None
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return None
        return f"{path}: integer outside the signed 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: NaN and infinite floats are not allowed"
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            err = json_value_error(v, f"{path}[{i}]", _depth + 1)
            if err:
                return err
        return None
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path}: map keys must be text, got {type(k).__name__}"
            err = json_value_error(v, f"{path}.{k}", _depth + 1)
            if err:
                return err
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{path}: byte strings are not allowed in payload values"
    return f"{path}: unsupported type {type(value).__name__}"


def check_json_value(value: Any, path: str = "value") -> None:
    """Raise ``ValueError`` naming the first offending element if ``value`` leaves the JSON data model."""
    err = json_value_error(value, path)
    if err:
        raise ValueError(err)


def parse_version(text: str) -> tuple[int, int, int] | None:
    """Parse ``MAJOR.MINOR.PATCH`` (a pre-release or build suffix is ignored); ``None`` when malformed."""
    m = _VERSION_RE.match(text)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def format_ts(dt: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``."""
    dt = dt.astimezone(UTC)
    # Formatted by hand: strftime("%Y") does not zero-pad years below 1000 on glibc ("226-01-01" for 0226).
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}."
        f"{dt.microsecond // 1000:03d}Z"
    )


def utc_now_ts() -> str:
    return format_ts(datetime.now(UTC))


def normalise_ts(text: str) -> str:
    """Parse an RFC 3339 timestamp with an offset and return it as UTC milliseconds with ``Z``.

    Raises ``ValueError`` for anything else (no offset, not a date-time).
    """
    if len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    if len(text) == 24 and text[-1] == "Z" and text[19] == "." and text[10] == "T":
        # fast path: already canonical form; still check it parses
        datetime.fromisoformat(text)
        return text
    dt = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T", 1))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp has no UTC offset: {text!r}")
    return format_ts(dt)


def sidecar_filename_error(name: object) -> str | None:
    """Why ``name`` is not a valid ``ctx.storage.put`` filename, or ``None`` (CONTRACT_EMIT, storage API).

    Non-empty, at most 255 UTF-8 bytes, no ``/``, ``\\``, NUL or control characters, not ``.``/``..`` and no
    ``..`` component, not ending in ``.meta.json`` (reserved for companions).
    """
    if not isinstance(name, str):
        return f"filename must be a string, got {type(name).__name__}"
    if not name:
        return "filename must not be empty"
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        return "filename is longer than 255 UTF-8 bytes"
    if "/" in name or "\\" in name:
        return f"filename must not contain path separators: {name!r}"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return f"filename must not contain NUL or control characters: {name!r}"
    if name in (".", "..") or ".." in name:
        return f"filename must not be '.' or contain '..': {name!r}"
    if name.endswith(".meta.json"):
        return f"filename must not end in .meta.json (reserved for metadata companions): {name!r}"
    return None
