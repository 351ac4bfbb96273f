"""Entry point of quarry-temporal (``[project.entry-points.quarry] temporal``): contributes ``quarry temporal``
through ``quarry_cli_commands``. Imports nothing heavy: the command group is built when ``quarry temporal`` runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from quarry_core import hookimpl
from quarry_core.registrations import CliCommandPlugin

__all__ = ["quarry_cli_commands"]


def _temporal_app() -> Any:
    from quarry_temporal.submit import temporal_app

    return temporal_app


@hookimpl
def quarry_cli_commands() -> Iterator[CliCommandPlugin]:
    yield CliCommandPlugin(
        name="temporal", factory=_temporal_app, summary="Run Quarry jobs and crawls on Temporal (submit)."
    )
