"""``python -m quarry_executor [--validate SCRIPT]``: the executor child process (wire.md §11).

Run mode (no arguments): line 1 of stdin is the run request (JSON, ≤ 16 MiB); frames go to stdout; exit 0
(completed), 1 (script error or canceled), 2 (crash), 3 (unusable run request, reason on stderr).

``--validate SCRIPT`` loads the script and prints ``{"valid": true, "exports": {"run": true, "hooks": [...]}}``
(exit 0) or ``{"valid": false, "error": "..."}`` (exit 1); no script path → exit 3.

``--browser-info`` prints ``{"executable", "found_via", "version"}`` (and ``error``) of the browser a run would
launch (exit 0, or 1 when none is found); ``quarry debug browser`` shows it.

The stdout guard is installed before anything else is imported.
"""

from __future__ import annotations

import os
import sys

from quarry_executor.guard import install_stdout_guard

__all__ = ["main"]

_USAGE = """usage: python -m quarry_executor [--warm | --validate SCRIPT | --browser-server | --browser-info]

  (no arguments)     run one script: the run request is line 1 of stdin, frames go to stdout
  --warm             run many scripts one at a time: line 1, then run_request frames (D12)
  --validate SCRIPT  load SCRIPT and print what it exports as JSON
  --browser-server   run the self-terminating browser reuse server; its ws:// URL is the first stdout line
  --browser-info     print the browser this executor would launch as JSON (executable, found_via, version)
"""

EXIT_OK = 0
EXIT_CRASH = 2
EXIT_BAD_REQUEST = 3


def _err(message: str) -> None:
    sys.stderr.write(f"quarry-executor: {message}\n")
    sys.stderr.flush()


def _write_out(fd: int, text: str) -> None:
    data = text.encode("utf-8")
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _validate(ipc_fd: int, args: list[str]) -> int:
    import json

    from quarry_core.errors import ScriptLoadError
    from quarry_executor.loader import HOOK_NAMES, load_script

    if not args or not args[0]:
        _write_out(ipc_fd, json.dumps({"valid": False, "error": "--validate needs a script path"}) + "\n")
        return EXIT_BAD_REQUEST
    path = os.path.abspath(args[0])
    try:
        script = load_script(path)
    except ScriptLoadError as exc:
        _write_out(ipc_fd, json.dumps({"valid": False, "error": str(exc)}) + "\n")
        return 1
    hooks = [name for name in HOOK_NAMES if name in script.hooks]
    _write_out(ipc_fd, json.dumps({"valid": True, "exports": {"run": True, "hooks": hooks}}) + "\n")
    return EXIT_OK


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


async def _run(ipc_fd: int) -> int:
    import asyncio
    import json
    import signal

    from quarry_core.protocol import RunRequest, RunRequestError
    from quarry_executor.channel import Channel, FrameWriter, RequestLineError, StdinReader
    from quarry_executor.diag import warn
    from quarry_executor.host import SIGTERM_GRACE, ScriptHost

    stdin = StdinReader(0)
    await stdin.open()
    try:
        line = await stdin.read_request_line()
    except RequestLineError as exc:
        _err(str(exc))
        return EXIT_BAD_REQUEST
    try:
        raw = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        _err(f"invalid run request: invalid JSON: {exc}")
        return EXIT_BAD_REQUEST
    try:
        request = RunRequest.from_wire(raw)
    except RunRequestError as exc:
        _err(f"invalid run request: {exc}")
        return EXIT_BAD_REQUEST
    if isinstance(raw, dict) and raw.get("storage") is not None and not isinstance(raw["storage"], dict):
        warn("run request: storage is not an object; ignored")

    writer = FrameWriter(ipc_fd)
    await writer.open()
    channel = Channel(writer, stdin)
    host = ScriptHost(request, channel)
    channel.start_reader(host.on_cancel_frame)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, host.request_cancel, "signal", SIGTERM_GRACE)
    try:
        code = await host.execute()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    await channel.stop_reader()
    # Drain without a deadline: the runtime may be slower than we are (a strict policy on a slow disk) and it
    # decides when to stop us; a dead runtime breaks the pipe, which ends the wait at once.
    await writer.close(timeout=None)
    return code


def _dispatch(ipc_fd: int, args: list[str]) -> int:
    if not args:
        import asyncio

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(_run(ipc_fd))
    first = args[0]
    if first in ("-h", "--help"):
        sys.stderr.write(_USAGE)
        return EXIT_OK
    if first == "--validate":
        return _validate(ipc_fd, args[1:])
    if first.startswith("--validate="):
        return _validate(ipc_fd, [first.split("=", 1)[1]])
    if first == "--warm":
        import asyncio

        from quarry_executor.warm import run_warm

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(run_warm(ipc_fd))
    if first == "--browser-info":
        import json

        from quarry_executor.browser import describe_browser

        info = describe_browser()
        _write_out(ipc_fd, json.dumps(info) + "\n")
        return 1 if info.get("executable") is None else EXIT_OK
    if first == "--browser-server":
        import asyncio

        from quarry_executor.browser_server import run_browser_server

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(run_browser_server(ipc_fd))
    _err(f"unknown argument {first!r}\n{_USAGE}")
    return EXIT_BAD_REQUEST


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m quarry_executor`` and the ``quarry-executor`` console script."""
    ipc_fd = install_stdout_guard()
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime sends ``cancel``; SIGTERM cancels too
    args = sys.argv[1:] if argv is None else list(argv)
    from quarry_core.gctuning import tune_gc

    tune_gc()
    try:
        code = _dispatch(ipc_fd, args)
    except BaseException:
        import traceback

        _err("internal error")
        traceback.print_exc(file=sys.stderr)
        code = EXIT_CRASH
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    # os._exit: a script's stray tasks or threads must not keep a finished run alive
    os._exit(code)


if __name__ == "__main__":
    main()
