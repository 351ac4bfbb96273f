"""``quarry debug decode [FILE|-]``: a captured executor frame stream (``quarry run --capture-frames FILE``) as
JSON lines, each frame validated against the wire contract; exit 1 at the first invalid frame. ``quarry debug
ipc``: a stored run's transport counters. ``quarry debug browser``: the browser a run would use.

``debug_app`` is a typer sub-app: other modules add ``debug <thing>`` commands or groups to it
(``debug resolve proxy``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from quarry_core.cli.read_common import ReadContext, ReadFailure, read_command
from quarry_core.outcomes import ExitCode

__all__ = ["debug_app", "debug_browser", "debug_ipc", "decode", "decode_stream"]

debug_app = typer.Typer(name="debug", help="Debugging tools.", no_args_is_help=True)


def _bytes_as_length(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": len(bytes(value))}
    if isinstance(value, dict):
        return {k: _bytes_as_length(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bytes_as_length(v) for v in value]
    return value


def decode_stream(stream: BinaryIO, out: Any) -> tuple[int, str | None]:
    """Write one JSON line per valid frame; return ``(frames, error)`` where ``error`` names the first bad frame."""
    from quarry_core.errors import FrameDecodeError, QuarryError
    from quarry_core.protocol.codec import read_frame_sync
    from quarry_core.protocol.frames import parse_executor_frame

    n = 0
    while True:
        try:
            frame = read_frame_sync(stream)
        except FrameDecodeError as exc:
            return n, f"frame {n + 1}: {exc}"
        if frame is None:
            return n, None
        try:
            parse_executor_frame(frame, check_payload=True)
        except (QuarryError, ValueError) as exc:
            return n, f"frame {n + 1}: {exc}"
        n += 1
        out.write(json.dumps(_bytes_as_length(frame), ensure_ascii=False, separators=(",", ":")) + "\n")


@debug_app.command("decode")
def decode(
    file: Annotated[str, typer.Argument(help="Captured frame stream ('-' = stdin).", show_default=False)] = "-",
) -> int:
    """Decode a captured frame stream (quarry run --capture-frames FILE) into JSON lines; bytes as {"$bytes": n}."""
    if file == "-":
        frames, error = decode_stream(sys.stdin.buffer, sys.stdout)
    else:
        path = Path(file)
        if not path.is_file():
            sys.stderr.write(f"Error: file not found: {file}\n")
            return int(ExitCode.USAGE)
        with open(path, "rb") as fh:
            frames, error = decode_stream(fh, sys.stdout)
    sys.stdout.flush()
    if error is not None:
        sys.stderr.write(f"Error: invalid frame stream after {frames} valid frames: {error}\n")
        return 1
    return 0


@debug_app.command("ipc")
@read_command("debug")
def debug_ipc(
    ctx: ReadContext,
    run_id: Annotated[str | None, typer.Option("--run-id", help="This run (default: the newest run).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Add the wire limits.")] = False,
) -> int:
    """The executor transport of one stored run: frames and bytes received, decode errors, last error."""
    from quarry_core.cli.read_model import filter_runs
    from quarry_core.protocol import constants

    runs = filter_runs(ctx.reader().runs())
    if run_id is not None:
        runs = [r for r in runs if r.get("run_id") == run_id]
        if not runs:
            raise ReadFailure(f"run not found: {run_id}")
    if not runs:
        raise ReadFailure("no runs stored yet")
    rec = runs[0]
    ipc = dict(rec.get("ipc") or {})
    data: dict[str, Any] = {
        "transport": "stdio",
        "encoding": "cbor",
        "framing": "u32be-length",
        "contract_version": rec.get("contract_version"),
        "run_id": rec.get("run_id"),
        "frames_received": ipc.get("frames_received"),
        "bytes_received": ipc.get("bytes_received"),
        "decode_errors": ipc.get("decode_errors"),
        "last_error": ipc.get("last_error"),
    }
    if verbose:
        data["limits"] = {
            "max_frame_size": constants.MAX_FRAME_SIZE,
            "max_payload_size": constants.MAX_PAYLOAD_SIZE,
            "max_chunk_size": constants.MAX_CHUNK_SIZE,
            "max_file_write_size": constants.MAX_FILE_WRITE_SIZE,
            "max_artifact_size": constants.MAX_ARTIFACT_SIZE,
            "max_sidecar_size": constants.MAX_SIDECAR_SIZE,
            "max_run_request_line": constants.MAX_RUN_REQUEST_LINE,
        }
    ctx.emit(data, title="debug ipc")
    return 0


@debug_app.command("browser")
@read_command("debug")
def debug_browser(
    ctx: ReadContext,
    executor: Annotated[str, typer.Option("--executor", help="Executor plugin to ask.")] = "playwright",
    executor_python: Annotated[
        str | None, typer.Option("--executor-python", help="Python that runs the executor (default: this one).")
    ] = None,
) -> int:
    """The browser a run would use: the executable the executor finds (and how), its version, and the browser
    reuse server as the next run would find it. Exit 1 when no browser is found, 2 when the executor cannot
    answer, 4 for an unknown executor."""
    from quarry_core.cli.common import ExecutorQueryError, query_executor
    from quarry_core.errors import ConfigError, QuarryError
    from quarry_core.interfaces import ExecutorConfig
    from quarry_core.plugins import PluginHost
    from quarry_core.runtime.browser import describe_reuse

    try:
        record = PluginHost.build().executor(executor).record
    except ConfigError as exc:  # an unknown executor name: a usage error
        raise ReadFailure(str(exc), ExitCode.USAGE) from None
    try:
        info = query_executor(
            record.factory(ExecutorConfig(python=executor_python or sys.executable)), ["--browser-info"]
        )
    except (ExecutorQueryError, QuarryError) as exc:
        raise ReadFailure(
            f"executor {executor!r} did not describe its browser (--browser-info): {exc}", ExitCode.EXECUTOR_CRASH
        ) from None
    if "executable" not in info:
        raise ReadFailure(
            f"executor {executor!r} did not describe its browser (--browser-info)", ExitCode.EXECUTOR_CRASH
        )
    data: dict[str, Any] = {
        "executable": info.get("executable"),
        "found_via": info.get("found_via"),
        "version": info.get("version"),
    }
    if info.get("error"):
        data["error"] = info["error"]
    data["reuse"] = describe_reuse()
    ctx.emit(data, title="debug browser")
    if data["executable"] is None:
        sys.stderr.write(f"Error: {data.get('error', 'no browser found')}\n")
        return 1
    return 0
