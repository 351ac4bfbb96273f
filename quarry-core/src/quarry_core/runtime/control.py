"""Signals and cancellation shared by the runs of one invocation (CONTRACT_RUN, signals)."""

from __future__ import annotations

import asyncio
import os
import signal

from loguru import logger

__all__ = ["RunControl"]


class RunControl:
    """First SIGINT/SIGTERM: cancel gracefully; second: kill executors; third: exit at once."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.signals = 0
        self.canceled = asyncio.Event()
        self.killed = asyncio.Event()

    @property
    def exit_code(self) -> int | None:
        if self.signal_name is None:
            return None
        return 130 if self.signal_name == "SIGINT" else 143

    def on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            self.signal_name = name
            logger.warning("Warning: received {}; canceling the run (press Ctrl+C again to kill it)", name)
            self.canceled.set()
        elif self.signals == 2:
            logger.warning("Warning: received {} again; killing executors", name)
            self.killed.set()
        else:
            os._exit(self.exit_code or 130)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal, int(sig))

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
