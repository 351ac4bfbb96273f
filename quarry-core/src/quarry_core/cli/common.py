"""Options and helpers shared by commands."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from quarry_core.errors import ConfigError
from quarry_core.outcomes import ExitCode

__all__ = ["FormatOption", "NoColorOption", "emit_output", "fail"]

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
