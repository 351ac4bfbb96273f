"""Options and helpers shared by commands."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from quarry_core.errors import ConfigError
from quarry_core.outcomes import ExitCode

__all__ = ["ExecutorQueryError", "FormatOption", "NoColorOption", "emit_output", "fail", "query_executor"]

FormatOption = Annotated[
    str | None, typer.Option("--format", "-f", help="json, table or yaml (default: table on a TTY, else json).")
]
NoColorOption = Annotated[bool, typer.Option("--no-color", envvar="NO_COLOR", help="Disable colour in tables.")]


def fail(message: str, code: int = ExitCode.USAGE) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return int(code)


def emit_output(data: Any, fmt: str | None, no_color: bool, *, table_key: str | None = None) -> None:
    from quarry_core.cli.output import render, resolve_format

    try:
        resolved = resolve_format(fmt)
    except ConfigError as exc:
        raise typer.Exit(fail(str(exc))) from None
    shown = data[table_key] if resolved == "table" and table_key else data
    sys.stdout.write(render(shown, resolved, no_color=no_color))


class ExecutorQueryError(Exception):
    """An executor asked a question on its command line could not be run, or printed no JSON object."""


def query_executor(launcher: Any, args: list[str], *, timeout: float = 120.0) -> dict[str, Any]:
    """Run ``<launcher command> ARGS`` (``--validate SCRIPT``, ``--browser-info``) and return the JSON object on the
    last line of its stdout. Raises :class:`ExecutorQueryError` with the reason (``exit N: <last stderr line>``
    when it ran but printed no object)."""
    import json
    import os
    import subprocess

    from quarry_core.errors import QuarryError

    try:
        cmd = [*launcher.command(False), *args]
        env = {**os.environ, **launcher.env()}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError, QuarryError) as exc:
        raise ExecutorQueryError(str(exc)) from None
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = None
    if not isinstance(result, dict):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExecutorQueryError(f"exit {proc.returncode}: {tail}")
    return result
