"""``quarry lode ...``: Lode housekeeping commands, mounted by quarry-lode through ``quarry_cli_commands``.

``quarry lode gc [--older-than 24h] [--apply]`` lists (and with ``--apply`` deletes) data files of snapshots that
never committed and stale temporary files (:mod:`quarry_lode.gc`). It takes the read-side commands' shared options
(``quarry_core.cli.read_common``: storage with the same defaults, environment variables and config file as
``quarry run``, ``--config``/``--no-config``, ``--log-level``, ``--format``) and never writes or creates anything
without ``--apply``.

Exit codes: 0 done; 1 no dataset at the storage path, or a storage failure (the message names the operation and
path); 4 usage or configuration.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from quarry_core.cli.read_common import ReadContext, ReadFailure, read_command
from quarry_core.outcomes import ExitCode

__all__ = [
    "app",
    "gc",
]

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


def _describe(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


@app.command("gc")
@read_command("lode")
def gc(
    ctx: ReadContext,
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
) -> int:
    """Find data files of snapshots that never committed (and stale temp files); delete them with --apply."""
    from quarry_core.errors import ConfigError, StorageError
    from quarry_core.units import parse_duration

    try:
        threshold = parse_duration(older_than)
    except ValueError as exc:
        raise ReadFailure(f"--older-than: {exc}", ExitCode.USAGE) from None
    config = ctx.storage
    if config.backend not in ("lode", "fs", "s3"):
        raise ReadFailure(
            f'quarry lode gc works on the lode storage backend (lode, fs, s3), not "{config.backend}"', ExitCode.USAGE
        )
    from quarry_lode.settings import resolve_location, validate_storage

    try:
        validate_storage(config)
    except ConfigError as exc:
        raise ReadFailure(str(exc), ExitCode.USAGE) from None
    location = resolve_location(config)
    if location.local_path is not None:
        base = f"{location.local_path.rstrip('/')}/datasets/{config.dataset}"
        if not _is_dir(base):
            raise ReadFailure(f"no dataset at {base}")

    from quarry_lode.gc import collect_garbage
    from quarry_lode.reader import open_dataset

    try:
        ds = open_dataset(location.url, config.dataset, storage_options=location.storage_options)
        report = collect_garbage(ds, older_than=threshold, apply=apply)
    except StorageError as exc:
        raise ReadFailure(str(exc)) from None
    except Exception as exc:  # fsspec/botocore failures while opening the filesystem
        from quarry_lode.errors import classify

        raise ReadFailure(str(classify(exc, "init", location.url))) from None

    ctx.emit(report.to_dict(), table_key="candidates", title="lode gc")
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
