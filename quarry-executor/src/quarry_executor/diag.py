"""Human-readable diagnostics of the executor: stderr only, never stdout (the runtime forwards them)."""

from __future__ import annotations

import sys

__all__ = ["info", "warn"]


def _write(line: str) -> None:
    stream = sys.stderr
    if stream is None:  # pragma: no cover - no stderr at all
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def info(message: str) -> None:
    """One informational line on stderr."""
    _write(f"quarry-executor: {message}")


def warn(message: str) -> None:
    """One warning line on stderr (``Warning: `` prefix, runtime.md §19)."""
    _write(f"Warning: {message}")
