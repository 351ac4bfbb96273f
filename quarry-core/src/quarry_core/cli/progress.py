"""The fan-out progress display of ``quarry run`` (stderr): one live line on a terminal, plain periodic lines
otherwise (CONTRACT_CLI, run summary)."""

from __future__ import annotations

import time
from typing import TextIO

from quarry_core.runtime.fanout import CrawlProgress

__all__ = ["ProgressPrinter"]


class ProgressPrinter:
    """Call with each :class:`CrawlProgress`. On a TTY the line is rewritten in place (every call); elsewhere a
    plain line is written at most every ``plain_every`` seconds, and a final one when the crawl ends."""

    def __init__(self, stream: TextIO, *, plain_every: float = 10.0) -> None:
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.plain_every = plain_every
        self._last = time.monotonic()

    def __call__(self, progress: CrawlProgress) -> None:
        line = progress.line()
        if self.tty:
            end = "\n" if progress.finished else ""
            self.stream.write(f"\r\x1b[K{line}{end}")
        else:
            now = time.monotonic()
            if not progress.finished and now - self._last < self.plain_every:
                return
            self._last = now
            self.stream.write(f"{line}\n")
        self.stream.flush()
