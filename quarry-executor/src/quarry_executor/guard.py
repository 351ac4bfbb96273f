"""The stdout guard (runtime.md §18): stdout carries CBOR frames only, so nothing else may write to it.

Installed once, first thing in :mod:`quarry_executor.__main__`, before the user's script or Playwright is
imported:

1. ``ipc_fd = os.dup(1)`` (non-inheritable) is kept for the frame writer alone;
2. ``os.dup2(2, 1)``: C extensions, ``os.write(1, ...)`` and inheriting subprocesses now write to stderr;
3. ``sys.stdout`` forwards text to stderr unchanged and, on a run's first stray write, adds one notice line
   ``[quarry] stdout guard: intercepted stray write: <first 200 characters, newlines escaped>``.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

__all__ = ["StdoutForwarder", "install_stdout_guard", "new_guard_run"]

_NOTICE = "[quarry] stdout guard: intercepted stray write: "
_PREVIEW = 200

_installed: StdoutForwarder | None = None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class StdoutForwarder(io.TextIOBase):
    """A text stream standing in for ``sys.stdout``: everything goes to ``target`` (stderr)."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._noticed = False

    def new_run(self) -> None:
        """Arm the notice again (one notice per run)."""
        self._noticed = False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8") or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._target, "errors", None)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 1  # fd 1 is a duplicate of stderr now

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        if s and not self._noticed:
            self._noticed = True
            self._target.write(_NOTICE + _escape(s[:_PREVIEW]) + "\n")
        self._target.write(s)
        if "\n" in s:
            self._target.flush()
        return len(s)

    def flush(self) -> None:
        self._target.flush()


def install_stdout_guard() -> int:
    """Install the guard and return ``ipc_fd``, the only descriptor frames may be written to.

    A second call raises ``RuntimeError``.
    """
    global _installed
    if _installed is not None:
        raise RuntimeError("the stdout guard is already installed")
    try:
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError):
        pass
    ipc_fd = os.dup(1)
    os.set_inheritable(ipc_fd, False)
    os.dup2(2, 1)
    forwarder = StdoutForwarder(sys.stderr)
    sys.stdout = forwarder
    _installed = forwarder
    return ipc_fd


def new_guard_run() -> None:
    """Start a new run for the guard's notice (warm executors call it per run)."""
    if _installed is not None:
        _installed.new_run()
