"""``quarry artifacts get <run> <artifact_id> -o FILE`` (reassembled and verified chunk by chunk, lode.md §9) and
``quarry files get <run> <name> -o FILE`` (a sidecar file, lode.md §8); ``list`` subcommands show what a run
has. Output files are written to a temporary name and renamed: a failed download leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from quarry_core.cli.inspect_cmd import artifact_items, find_run
from quarry_core.cli.read_common import ReadContext, ReadFailure, read_command
from quarry_core.outcomes import ExitCode

__all__ = ["artifacts_app", "files_app"]

artifacts_app = typer.Typer(name="artifacts", help="Artifacts of a run.", no_args_is_help=True)
files_app = typer.Typer(name="files", help="Sidecar files of a run.", no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="The run id.", show_default=False)]
OutputOption = Annotated[str | None, typer.Option("--output", "-o", help="Where to write ('-' = stdout).")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]


def _check_output(output: str | None, force: bool) -> Path | None:
    if not output:
        raise ReadFailure("missing --output/-o FILE ('-' for stdout)", ExitCode.USAGE)
    if output == "-":
        return None
    target = Path(output)
    if target.exists() and not force:
        raise ReadFailure(f"output file exists: {target} (use --force to overwrite)", ExitCode.USAGE)
    if not target.parent.is_dir():
        raise ReadFailure(f"output directory does not exist: {target.parent}", ExitCode.USAGE)
    return target


def _copy(stream: BinaryIO, target: Path | None) -> int:
    """Copy ``stream`` to ``target`` (or stdout) through a temporary file; returns the byte count."""
    if target is None:
        n = 0
        for block in iter(lambda: stream.read(1 << 20), b""):
            sys.stdout.buffer.write(block)
            n += len(block)
        sys.stdout.flush()
        return n
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            shutil.copyfileobj(stream, fh, 1 << 20)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target.stat().st_size


@artifacts_app.command("get")
@read_command("artifacts", output=False)
def artifacts_get(
    ctx: ReadContext,
    run_id: RunArg,
    artifact_id: Annotated[str, typer.Argument(help="The artifact id.", show_default=False)],
    output: OutputOption = None,
    force: ForceOption = False,
    include_orphans: Annotated[
        bool, typer.Option("--include-orphans", help="Also reassemble an artifact whose commit never arrived.")
    ] = False,
) -> int:
    """Reassemble one artifact from its chunks (checksums, offsets and size verified) into FILE."""
    from quarry_core.errors import QuarryError

    target = _check_output(output, force)
    find_run(ctx, run_id)
    try:
        stream = ctx.reader().open_artifact(run_id, artifact_id, include_orphans=include_orphans)
        with stream:
            n = _copy(stream, target)
    except QuarryError as exc:
        raise ReadFailure(str(exc)) from None
    except Exception as exc:
        name = type(exc).__name__
        if name in ("ArtifactNotFound", "ArtifactCorrupt"):
            raise ReadFailure(str(exc)) from None
        raise
    sys.stderr.write(f"wrote artifact {artifact_id} ({n} bytes) to {output}\n")
    return 0


@artifacts_app.command("list")
@read_command("artifacts")
def artifacts_list(ctx: ReadContext, run_id: RunArg) -> int:
    """A run's committed artifacts: artifact_id, name, content_type, size_bytes."""
    rec, _ = find_run(ctx, run_id)
    ctx.emit(artifact_items(ctx, rec))
    return 0


def _sidecars(ctx: ReadContext, run_id: str) -> list[Any]:
    find_run(ctx, run_id)
    files: list[Any] = ctx.reader().sidecar_files(run_id)
    return files


@files_app.command("get")
@read_command("files", output=False)
def files_get(
    ctx: ReadContext,
    run_id: RunArg,
    name: Annotated[str, typer.Argument(help="The sidecar file name as the script gave it.", show_default=False)],
    output: OutputOption = None,
    force: ForceOption = False,
) -> int:
    """Download one sidecar file (written by the script with storage.put) into FILE."""
    target = _check_output(output, force)
    files = _sidecars(ctx, run_id)
    match = next((f for f in files if f.filename == name), None)
    if match is None:
        have = ", ".join(sorted(f.filename for f in files)) or "none"
        raise ReadFailure(f"file not found: {name} in run {run_id} (files: {have})")
    with ctx.reader().open_sidecar(match.key) as stream:
        n = _copy(stream, target)
    sys.stderr.write(f"wrote file {name} ({n} bytes) to {output}\n")
    return 0


@files_app.command("list")
@read_command("files")
def files_list(ctx: ReadContext, run_id: RunArg) -> int:
    """A run's sidecar files: filename, content_type, size, key."""
    files = _sidecars(ctx, run_id)
    ctx.emit([{"filename": f.filename, "content_type": f.content_type, "size": f.size, "key": f.key} for f in files])
    return 0
