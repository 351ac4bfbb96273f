"""Entry-point module of quarry-executor (``[project.entry-points.quarry] executor``).

Registers the ``playwright`` executor. Imports nothing heavy: Playwright is only imported by the child process.
"""

from __future__ import annotations

from collections.abc import Iterator

from quarry_core import hookimpl
from quarry_core.interfaces import ExecutorConfig
from quarry_core.registrations import ExecutorPlugin

__all__ = ["quarry_executors"]


def _launcher(config: ExecutorConfig) -> object:
    from quarry_executor.launcher import PlaywrightLauncher

    return PlaywrightLauncher(config)


@hookimpl
def quarry_executors() -> Iterator[ExecutorPlugin]:
    yield ExecutorPlugin(
        name="playwright",
        factory=_launcher,
        summary="runs Playwright scripts (Chromium) in a child process: python -m quarry_executor",
    )
