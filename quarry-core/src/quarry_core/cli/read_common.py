"""What every read-side command shares (CONTRACT_CLI §9): ``run``'s storage options (same flags, environment
variables and config keys), ``--config``/``--no-config``, ``--format``/``--no-color``/``--tui``, opening the stored
data read-only through the storage backend plugin, and turning failures into exit codes (1 not found or read
failure, 4 usage).

Commands are plain functions decorated with :func:`read_command`; the decorator adds the shared options to the
signature typer sees and hands the command a :class:`ReadContext`. Groups are typer sub-apps (:data:`list_app`,
``inspect_app``, …) so other modules can add commands to them.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import attrs
import typer

from quarry_core.errors import ConfigError, QuarryError
from quarry_core.outcomes import ExitCode

__all__ = [
    "CONFIG_KEYS",
    "READ_FAILURE",
    "SHARED_DEFAULTS",
    "SHARED_OPTION_NAMES",
    "ReadContext",
    "ReadFailure",
    "jsonable",
    "parse_since",
    "read_command",
]

#: Exit code of "not found" and read failures.
READ_FAILURE = 1

#: Shared read-side parameter → the config key it falls back to (same keys as ``quarry run``).
CONFIG_KEYS: dict[str, str] = {
    "storage_backend": "storage.backend",
    "storage_path": "storage.path",
    "storage_dataset": "storage.dataset",
    "storage_region": "storage.region",
    "storage_endpoint": "storage.endpoint",
    "storage_s3_path_style": "storage.s3_path_style",
    "storage_option": "storage.options",
}

_STORAGE = "Storage"
_OUTPUT = "Output"


class ReadFailure(Exception):
    """A read-side failure with its exit code (1 not found / read failure, 4 usage)."""

    def __init__(self, message: str, code: int = READ_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def jsonable(value: Any) -> Any:
    """Stored values as JSON: timestamps as RFC 3339 UTC with milliseconds, bytes as ``{"$bytes": n}``."""
    from quarry_core.protocol.values import format_ts

    if isinstance(value, datetime):
        return format_ts(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": len(bytes(value))}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def parse_since(flag: str, text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``--since``/``--until``: a duration back from now (``1h``, ``30m``), an RFC 3339 time or a date."""
    from quarry_core.units import parse_duration

    if text is None or text == "":
        return None
    try:
        seconds = parse_duration(text)
    except ValueError:
        pass
    else:
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    candidate = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        dt = datetime.fromisoformat(candidate)
    except ValueError:
        raise ReadFailure(
            f'invalid {flag} "{text}": use a duration back from now (30m, 2h, 1h30m), '
            "an RFC 3339 time (2026-11-27T10:00:00Z) or a date (2026-11-27)",
            ExitCode.USAGE,
        ) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@attrs.define
class ReadContext:
    """The resolved shared options of one read-side command."""

    storage: Any  # StorageConfig
    format: str | None
    no_color: bool
    tui: bool
    group: str
    config: Any  # ConfigFile
    _reader: Any = None

    def reader(self) -> Any:
        """The stored data, opened read-only through the storage backend plugin (cached)."""
        if self._reader is None:
            self._reader = open_reader(self.storage)
        return self._reader

    def emit(self, data: Any, *, table_key: str | None = None, title: str = "") -> None:
        """Print ``data`` in the chosen format, or show it in the TUI with ``--tui``."""
        from quarry_core.cli.output import render, resolve_format

        data = jsonable(data)
        if self.tui:
            from quarry_core.cli.tui import show

            show(data, title=title or f"quarry {self.group}")
            return
        try:
            resolved = resolve_format(self.format)
        except ConfigError as exc:
            raise ReadFailure(str(exc), ExitCode.USAGE) from None
        shown = data[table_key] if resolved == "table" and table_key else data
        sys.stdout.write(render(shown, resolved, no_color=self.no_color))


def open_reader(storage: Any) -> Any:
    """Open ``storage`` (a ``StorageConfig``) through its backend plugin's ``reader``; exit 1 if nothing is there."""
    from quarry_core.errors import PluginError
    from quarry_core.plugins import PluginHost

    try:
        host = PluginHost.build()
        rec = host.storage_backend(storage.backend)
        if rec.record.validate is not None:
            rec.record.validate(storage)
    except (ConfigError, PluginError) as exc:
        raise ReadFailure(str(exc), ExitCode.USAGE) from None
    if rec.record.reader is None:
        raise ReadFailure(
            f'storage backend "{storage.backend}" cannot be read by quarry (its plugin registers no reader)',
            ExitCode.USAGE,
        )
    try:
        reader = rec.record.reader(storage)
        exists = reader.exists()
    except QuarryError as exc:
        raise ReadFailure(f"cannot read {storage.path}: {exc}") from None
    except Exception as exc:
        raise ReadFailure(f"cannot read {storage.path}: {type(exc).__name__}: {exc}") from None
    if not exists:
        raise ReadFailure(
            f'no dataset at {storage.path} (dataset "{storage.dataset}"); '
            "check --storage-path / --storage-dataset, or run quarry run first"
        )
    return reader


# ---------------------------------------------------------------------------------------------- shared options

_SHARED: list[tuple[str, Any, Any]] = [
    (
        "storage_backend",
        Annotated[
            str | None,
            typer.Option(
                "--storage-backend",
                envvar="QUARRY_STORAGE_BACKEND",
                help="Storage backend (lode; aliases fs, s3).",
                rich_help_panel=_STORAGE,
                show_default=False,
            ),
        ],
        None,
    ),
    (
        "storage_path",
        Annotated[
            str | None,
            typer.Option(
                "--storage-path",
                envvar="QUARRY_STORAGE_PATH",
                help="Local directory or fsspec URL.",
                rich_help_panel=_STORAGE,
                show_default=False,
            ),
        ],
        None,
    ),
    (
        "storage_dataset",
        Annotated[
            str | None,
            typer.Option(
                "--storage-dataset",
                envvar="QUARRY_STORAGE_DATASET",
                help="Dataset name.",
                rich_help_panel=_STORAGE,
                show_default=False,
            ),
        ],
        None,
    ),
    (
        "storage_region",
        Annotated[
            str | None,
            typer.Option(
                "--storage-region", envvar="QUARRY_STORAGE_REGION", help="S3 region.", rich_help_panel=_STORAGE
            ),
        ],
        None,
    ),
    (
        "storage_endpoint",
        Annotated[
            str | None,
            typer.Option(
                "--storage-endpoint",
                envvar="QUARRY_STORAGE_ENDPOINT",
                help="S3-compatible endpoint URL.",
                rich_help_panel=_STORAGE,
            ),
        ],
        None,
    ),
    (
        "storage_s3_path_style",
        Annotated[
            bool | None,
            typer.Option(
                "--storage-s3-path-style",
                envvar="QUARRY_STORAGE_S3_PATH_STYLE",
                help="Path-style S3 addressing.",
                rich_help_panel=_STORAGE,
                show_default=False,
            ),
        ],
        None,
    ),
    (
        "storage_option",
        Annotated[
            list[str] | None,
            typer.Option(
                "--storage-option",
                envvar="QUARRY_STORAGE_OPTION",
                help="fsspec option K=V (repeatable).",
                rich_help_panel=_STORAGE,
            ),
        ],
        None,
    ),
    (
        "config",
        Annotated[
            str | None,
            typer.Option("--config", envvar="QUARRY_CONFIG", help="Configuration file (TOML or YAML)."),
        ],
        None,
    ),
    (
        "no_config",
        Annotated[bool, typer.Option("--no-config", help="Do not read quarry.toml / pyproject.toml.")],
        False,
    ),
    (
        "log_level",
        Annotated[
            str | None,
            typer.Option("--log-level", envvar="QUARRY_LOG_LEVEL", help="debug, info, warning, error."),
        ],
        None,
    ),
    (
        "format",
        Annotated[
            str | None,
            typer.Option(
                "--format",
                "-f",
                envvar="QUARRY_FORMAT",
                help="json, table or yaml (default: table on a TTY, else json).",
                rich_help_panel=_OUTPUT,
            ),
        ],
        None,
    ),
    (
        "no_color",
        Annotated[
            bool,
            typer.Option(
                "--no-color", help="No colour in tables (also when NO_COLOR is set).", rich_help_panel=_OUTPUT
            ),
        ],
        False,
    ),
    (
        "tui",
        Annotated[
            bool,
            typer.Option(
                "--tui", help="Show the result in a terminal UI (inspect and stats only).", rich_help_panel=_OUTPUT
            ),
        ],
        False,
    ),
]
_SHARED_NAMES = frozenset(name for name, _, _ in _SHARED)
#: Names of the options :func:`read_command` adds to every read-side command (the reference documents them once).
SHARED_OPTION_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _SHARED)
#: Their effective defaults when neither the command line, the environment nor the config file sets them.
SHARED_DEFAULTS: dict[str, str] = {
    "storage_backend": "lode",
    "storage_path": "./quarry-data",
    "storage_dataset": "quarry",
}
_NO_FORMAT = frozenset({"format", "no_color", "tui"})


def _storage_config(shared: Mapping[str, Any], cfg: Any) -> Any:
    """``StorageConfig`` with the precedence command line > environment > config file > default."""
    from quarry_core.interfaces import StorageConfig

    def pick(name: str, key: str, default: Any) -> Any:
        value = shared.get(name)
        if value is not None:
            return value
        return cfg.get(f"storage.{key}", default)

    options: dict[str, str] = {str(k): str(v) for k, v in dict(cfg.get("storage.options") or {}).items()}
    for item in shared.get("storage_option") or []:
        for part in str(item).split(","):
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise ReadFailure(f'invalid --storage-option "{part}": expected KEY=VALUE', ExitCode.USAGE)
            options[key] = value
    return StorageConfig(
        backend=pick("storage_backend", "backend", "lode"),
        path=pick("storage_path", "path", "./quarry-data"),
        dataset=pick("storage_dataset", "dataset", "quarry"),
        region=pick("storage_region", "region", None),
        endpoint=pick("storage_endpoint", "endpoint", None),
        s3_path_style=bool(pick("storage_s3_path_style", "s3_path_style", False)),
        options=options,
    )


def read_command(group: str, *, tui: bool = False, output: bool = True) -> Callable[[Callable[..., Any]], Any]:
    """Make ``fn(ctx: ReadContext, **own_options)`` a typer command with the shared read-side options.

    ``group`` names the command group in messages (``--tui is not supported for list commands``); ``tui``
    allows ``--tui``; ``output=False`` (export, artifacts, files) drops ``--format``/``--no-color``/``--tui``.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != "ctx"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
            for name, ann, default in _SHARED
            if output or name not in _NO_FORMAT
        ]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> int:
            common = {k: kwargs.pop(k) for k in list(kwargs) if k in _SHARED_NAMES}
            try:
                return _invoke(fn, group, tui, common, kwargs)
            except ReadFailure as exc:
                sys.stderr.write(f"Error: {exc}\n")
                return exc.code

        wrapper.__signature__ = inspect.Signature(params, return_annotation=int)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": int}
        return wrapper

    return decorate


def _invoke(fn: Callable[..., Any], group: str, tui_ok: bool, common: dict[str, Any], own: dict[str, Any]) -> int:
    from quarry_core.cli.logs import LEVELS, setup_logging
    from quarry_core.config import explicit_config_path, load_config

    level = (common.get("log_level") or "warning").lower()
    if level not in LEVELS:
        raise ReadFailure(f'invalid --log-level "{level}" (must be debug, info, warning or error)', ExitCode.USAGE)
    setup_logging(level, "text")
    if common.get("format") is not None:
        from quarry_core.cli.output import resolve_format

        try:
            resolve_format(common["format"])
        except ConfigError as exc:
            raise ReadFailure(str(exc), ExitCode.USAGE) from None
    want_tui = bool(common.get("tui"))
    if want_tui:
        if not tui_ok:
            raise ReadFailure(f"--tui is not supported for {group} commands", ExitCode.USAGE)
        if common.get("format") is not None:
            raise ReadFailure("--tui cannot be combined with --format", ExitCode.USAGE)
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise ReadFailure("--tui requires a terminal", ExitCode.USAGE)
        try:
            import textual  # noqa: F401
        except ImportError:
            raise ReadFailure('--tui needs Textual: pip install "quarry-core[tui]"', ExitCode.USAGE) from None
    try:
        cfg = load_config(
            explicit=explicit_config_path(common.get("config"), no_config=bool(common.get("no_config"))),
            no_config=bool(common.get("no_config")),
        )
    except ConfigError as exc:
        raise ReadFailure(str(exc), ExitCode.USAGE) from None
    ctx = ReadContext(
        storage=_storage_config(common, cfg),
        format=common.get("format"),
        no_color=bool(common.get("no_color")) or bool(os.environ.get("NO_COLOR")),
        tui=want_tui,
        group=group,
        config=cfg,
    )
    try:
        result = fn(ctx, **own)
    except ReadFailure:
        raise
    except QuarryError as exc:
        raise ReadFailure(f"read failure: {exc}") from None
    return int(result or 0)
