"""How the runtime starts this executor (runtime.md §2). Imports nothing heavy."""

from __future__ import annotations

import os

from quarry_core.interfaces import ExecutorConfig
from quarry_executor import __version__

__all__ = ["PlaywrightLauncher"]


class PlaywrightLauncher:
    """Implements :class:`quarry_core.interfaces.ExecutorLauncher` for ``python -m quarry_executor``."""

    name = "playwright"
    version = __version__

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"PlaywrightLauncher(python={self.config.python!r}, resolve_from={self.config.resolve_from!r})"

    def command(self, warm: bool = False) -> list[str]:
        # -P (Python 3.11+): do not put the working directory first on sys.path, so a ``signal.py`` or ``json.py``
        # in the directory ``quarry run`` is started from is never imported in place of the module the executor
        # imports lazily; only the script it was given runs (issue 11, security).
        cmd = [self.config.python, "-P", "-m", "quarry_executor"]
        if warm:
            cmd.append("--warm")
        return cmd

    def env(self) -> dict[str, str]:
        """Variables to add to the runtime's environment."""
        env = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        resolve_from = self.config.resolve_from
        if resolve_from:
            current = os.environ.get("PYTHONPATH", "")
            rest = [p for p in current.split(os.pathsep) if p and p != resolve_from]
            env["PYTHONPATH"] = os.pathsep.join([resolve_from, *rest])
            env["QUARRY_RESOLVE_FROM"] = resolve_from
        return env
