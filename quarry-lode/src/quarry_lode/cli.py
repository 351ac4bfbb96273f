"""``quarry lode ...``: Lode housekeeping commands, mounted by quarry-lode through ``quarry_cli_commands``.

``quarry lode gc [--older-than 24h] [--apply]`` lists (and with ``--apply`` deletes) data files of snapshots that
never committed and stale temporary files (:mod:`quarry_lode.gc`). It takes ``quarry run``'s storage options with
the same defaults and environment variables and never writes or creates anything without ``--apply``.

Exit codes: 0 done; 1 no dataset at the storage path, or a storage failure (the message names the operation and
path); 4 usage or configuration.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

__all__ = [
    "app",
    "gc",
]

_STORAGE = "Storage"

app = typer.Typer(
    name="lode",
    help="Lode storage housekeeping.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _lode() -> None:
    """Lode storage housekeeping."""


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return code


def _describe(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


@app.command("gc")
def gc(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            envvar="QUARRY_OLDER_THAN",
            help="Only files older than this duration (e.g. 24h, 90m); never shorter than your longest run.",
        ),
    ] = "24h",
    apply: Annotated[
        bool, typer.Option("--apply", help="Delete the candidates (default: dry run, nothing is written).")
    ] = False,
    storage_backend: Annotated[
        str,
        typer.Option(
            "--storage-backend",
            envvar="QUARRY_STORAGE_BACKEND",
            help="Storage backend (lode; aliases fs, s3).",
            rich_help_panel=_STORAGE,
        ),
    ] = "lode",
    storage_path: Annotated[
        str,
        typer.Option(
            "--storage-path",
            envvar="QUARRY_STORAGE_PATH",
            help="Local directory or fsspec URL.",
            rich_help_panel=_STORAGE,
        ),
    ] = "./quarry-data",
    storage_dataset: Annotated[
        str,
        typer.Option(
            "--storage-dataset", envvar="QUARRY_STORAGE_DATASET", help="Dataset name.", rich_help_panel=_STORAGE
        ),
    ] = "quarry",
    storage_region: Annotated[
        str | None,
        typer.Option("--storage-region", envvar="QUARRY_STORAGE_REGION", help="S3 region.", rich_help_panel=_STORAGE),
    ] = None,
    storage_endpoint: Annotated[
        str | None,
        typer.Option(
            "--storage-endpoint",
            envvar="QUARRY_STORAGE_ENDPOINT",
            help="S3-compatible endpoint URL.",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    storage_s3_path_style: Annotated[
        bool,
        typer.Option(
            "--storage-s3-path-style",
            envvar="QUARRY_STORAGE_S3_PATH_STYLE",
            help="Path-style S3 addressing.",
            rich_help_panel=_STORAGE,
        ),
    ] = False,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-option",
            envvar="QUARRY_STORAGE_OPTION",
            help="fsspec option K=V (repeatable).",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="json, table or yaml (default: table on a TTY, else json)."),
    ] = None,
    no_color: Annotated[bool, typer.Option("--no-color", envvar="NO_COLOR", help="Disable colour in tables.")] = False,
) -> int:
    """Find data files of snapshots that never committed (and stale temp files); delete them with --apply."""
    from quarry_core.cli.output import render, resolve_format
    from quarry_core.errors import ConfigError, StorageError
    from quarry_core.interfaces import StorageConfig
    from quarry_core.units import parse_duration

    try:
        threshold = parse_duration(older_than)
    except ValueError as exc:
        return _fail(f"--older-than: {exc}", 4)
    try:
        resolved_format = resolve_format(fmt)
    except ConfigError as exc:
        return _fail(str(exc), 4)
    if storage_backend not in ("lode", "fs", "s3"):
        return _fail(f'quarry lode gc works on the lode storage backend (lode, fs, s3), not "{storage_backend}"', 4)
    options: dict[str, str] = {}
    for item in [p for raw in storage_option or [] for p in raw.split(",") if p]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            return _fail(f'invalid --storage-option "{item}": expected KEY=VALUE', 4)
        options[key.strip()] = value
    config = StorageConfig(
        backend=storage_backend,
        path=storage_path,
        dataset=storage_dataset,
        region=storage_region,
        endpoint=storage_endpoint,
        s3_path_style=storage_s3_path_style,
        options=options,
    )
    from quarry_lode.settings import resolve_location, validate_storage

    try:
        validate_storage(config)
    except ConfigError as exc:
        return _fail(str(exc), 4)
    location = resolve_location(config)
    if location.local_path is not None:
        base = f"{location.local_path.rstrip('/')}/datasets/{config.dataset}"
        if not _is_dir(base):
            return _fail(f"no dataset at {base}", 1)

    from quarry_lode.gc import collect_garbage
    from quarry_lode.reader import open_dataset

    try:
        ds = open_dataset(location.url, config.dataset, storage_options=location.storage_options)
        report = collect_garbage(ds, older_than=threshold, apply=apply)
    except StorageError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:  # fsspec/botocore failures while opening the filesystem
        from quarry_lode.errors import classify

        return _fail(str(classify(exc, "init", location.url)), 1)

    data: Any = report.to_dict()
    shown = data["candidates"] if resolved_format == "table" else data
    sys.stdout.write(render(shown, resolved_format, no_color=no_color))
    count, size, age = len(report.candidates), report.candidate_bytes, _describe(threshold)
    if apply:
        line = f"deleted {len(report.deleted)} of {count} file(s) older than {age} ({size} bytes)"
        if report.skipped_committed:
            line += f"; {report.skipped_committed} committed meanwhile and kept"
    else:
        line = f"dry run: {count} file(s) older than {age} ({size} bytes) would be deleted; add --apply to delete"
    sys.stderr.write(f"{line} in {report.dataset}\n")
    return 0


def _is_dir(path: str) -> bool:
    import os

    return os.path.isdir(path)
