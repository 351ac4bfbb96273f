"""The ``quarry`` command line (CONTRACT_CLI). Heavy imports live inside commands so ``--help`` and
``--version`` stay fast and import no pyarrow, playwright, cbor2 or plugin modules.

Click's usage errors exit 4 (usage/configuration), not click's default 2, which means ``executor_crash``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from quarry_core import __version__
from quarry_core.cli import (
    adapter_cmd,
    debug_cmd,
    export_cmd,
    files_cmd,
    inspect_cmd,
    list_cmd,
    plugins_cmd,
    proxy_cmd,
    run_cmd,
    stats_cmd,
)
from quarry_core.outcomes import ExitCode
from quarry_core.protocol.constants import CONTRACT_VERSION

__all__ = ["app", "main", "run_app"]

# typer >= 0.2x vendors click privately; reach its exception classes through public ones.
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _QuarryGroup(TyperGroup):
    """The root group: built-in commands, then groups contributed through ``quarry_cli_commands``.

    Plugin groups are looked up only when a name is not built in, so ``quarry --help`` and the built-in commands
    load no plugin module; ``quarry plugins --kind cli_command`` lists what is installed.
    """

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return _plugin_command(cmd_name)


def _plugin_command(name: str) -> Any:
    """The click group of the plugin command ``name``, or ``None`` (click then says "No such command")."""
    from quarry_core.errors import PluginError, UnknownPluginError
    from quarry_core.plugins import PluginHost

    try:
        provided = PluginHost.build().get("cli_command", name)
    except UnknownPluginError as exc:
        if exc.hint:
            raise _UsageError(str(exc)) from None
        return None
    except PluginError as exc:
        raise _UsageError(str(exc)) from None
    try:
        group = typer.main.get_group(provided.record.factory())
    except Exception as exc:  # a broken plugin must not crash the CLI with a traceback
        raise _UsageError(f'command "{name}" from {provided.distribution} failed to load: {exc}') from None
    group.name = name
    if provided.record.summary and not group.help:
        group.help = provided.record.summary
    return group


app = typer.Typer(
    name="quarry",
    cls=_QuarryGroup,
    help="Quarry: contract-first web extraction runtime.",
    epilog=(
        "Installed plugins add commands of their own (quarry lode gc, quarry temporal submit, ...): "
        "quarry plugins --kind cli_command lists them."
    ),
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
# Read side (CONTRACT_CLI §9). Groups are typer sub-apps other modules add commands to.
app.add_typer(list_cmd.list_app)
app.add_typer(inspect_cmd.inspect_app)
app.add_typer(stats_cmd.stats_app)
app.add_typer(debug_cmd.debug_app)
# Proxy read side (CONTRACT_PROXY §10): inspect proxy, stats proxies, debug resolve proxy.
inspect_cmd.inspect_app.command("proxy")(proxy_cmd.inspect_proxy)
stats_cmd.stats_app.command("proxies")(proxy_cmd.stats_proxies)
debug_cmd.debug_app.add_typer(proxy_cmd.resolve_app)
app.add_typer(files_cmd.artifacts_app)
app.add_typer(files_cmd.files_app)
app.command("export")(export_cmd.export)
# Notification outbox (CONTRACT_INTEGRATION §3): quarry adapter drain.
app.add_typer(adapter_cmd.adapter_app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: maps click's usage errors to exit 4."""
    code = run_app(app, "quarry", argv)
    if argv is None:
        sys.exit(code)
    return code


def run_app(typer_app: typer.Typer, prog_name: str, argv: list[str] | None) -> int:
    """Run a typer app the way ``quarry`` runs: click's usage errors exit 4 (CONTRACT_CLI), Ctrl-C 130, and the
    command's int return value is the exit code. ``argv`` ``None`` reads ``sys.argv``; nothing exits here."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = typer_app(args=args, prog_name=prog_name, standalone_mode=False)
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
    return code
