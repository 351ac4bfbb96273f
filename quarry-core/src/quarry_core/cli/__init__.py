"""The ``quarry`` command line (CONTRACT_CLI). Heavy imports live inside commands so ``--help`` and
``--version`` stay fast and import no pyarrow, playwright, cbor2 or plugin modules.

Click's usage errors exit 4 (usage/configuration), not click's default 2, which means ``executor_crash``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from quarry_core import __version__
from quarry_core.cli import plugins_cmd, run_cmd
from quarry_core.outcomes import ExitCode
from quarry_core.protocol.constants import CONTRACT_VERSION

__all__ = ["app", "main"]

# typer >= 0.2x vendors click privately; reach its exception classes through public ones.
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

app = typer.Typer(
    name="quarry",
    help="Quarry: contract-first web extraction runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"quarry {__version__} (contract {CONTRACT_VERSION})")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Quarry: contract-first web extraction runtime."""


app.command("run", context_settings={"allow_interspersed_args": True})(run_cmd.run)
app.command("plugins")(plugins_cmd.plugins)
app.command("version")(plugins_cmd.version)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: maps click's usage errors to exit 4."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, prog_name="quarry", standalone_mode=False)
    except _UsageError as exc:
        exc.show()  # type: ignore[attr-defined]
        code = int(ExitCode.USAGE)
    except typer.Abort:
        sys.stderr.write("Aborted.\n")
        code = 130
    except typer.Exit as exc:
        code = exc.exit_code
    except _ClickException as exc:
        exc.show()  # type: ignore[attr-defined]
        code = int(ExitCode.USAGE)
    else:
        code = result if isinstance(result, int) else 0
    if argv is None:
        sys.exit(code)
    return code
