"""Durations and sizes as the CLI and config files write them (CONTRACT_CLI conventions)."""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_bool", "parse_duration", "parse_size"]

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_duration(text: str | float | int, *, bare_number_seconds: bool = False) -> float:
    """``500ms``, ``1.5s``, ``1m30s``, ``0`` → seconds. A bare number is seconds only in config files.

    Raises ``ValueError`` with the accepted forms.
    """
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 500ms, 1.5s, 1m30s or 0")
    if isinstance(text, (int, float)):
        if bare_number_seconds or text == 0:
            if text < 0:
                raise ValueError(f"invalid duration {text!r}: must not be negative")
            return float(text)
        raise ValueError(f"invalid duration {text!r}: add a unit (ns, us, ms, s, m, h)")
    raw = text.strip()
    if raw == "0":
        return 0.0
    if bare_number_seconds and re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return float(raw)
    pos = 0
    total = 0.0
    for m in _DURATION_RE.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 500ms, 1.5s, 1m30s or 0")
    return total


def parse_size(text: str | int) -> int:
    """Bytes, or a number with ``KB MB GB`` (10^3) or ``KiB MiB GiB`` (2^10)."""
    if isinstance(text, bool):
        raise ValueError(f"invalid size {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"invalid size {text!r}: must not be negative")
        return text
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"invalid size {text!r}: expected bytes or a number with KB, MB, GB, KiB, MiB or GiB")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def format_size(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    v = text.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"invalid boolean {text!r}: expected 1/0/true/false/yes/no")
