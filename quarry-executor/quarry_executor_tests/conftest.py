"""Fixtures for the executor tests: a local site, script files, and a harness that plays the runtime.

``run_executor`` starts ``python -m quarry_executor`` as a real subprocess, writes the run request line,
reads frames with :func:`quarry_core.protocol.read_frame_sync`, answers ``file_write``/``file_write_chunk``
with ``file_write_ack`` and ``rotate_proxy`` with ``proxy_update`` on stdin, and returns an
:class:`ExecResult` (frames, stderr, exit code).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from quarry_core.protocol import (
    EVENT_TYPES,
    FileWriteAck,
    ProxyUpdate,
    encode_frame,
    read_frame_sync,
)

SITE_PAGES = {
    "index.html": "<!doctype html><html><head><title>Quarry test shop</title></head><body>"
    "<ul><li class='p' data-sku='A1'>Anvil</li><li class='p' data-sku='B2'>Bell</li>"
    "<li class='p' data-sku='C3'>Candle</li></ul></body></html>",
    "second.html": "<!doctype html><html><head><title>Second page</title></head><body>two</body></html>",
}


@dataclass
class SentFile:
    write_id: int
    filename: str
    content_type: str
    data: bytes
    chunks: int


@dataclass
class ExecResult:
    frames: list[dict[str, Any]]
    stderr: str
    code: int
    files: list[SentFile] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [f["type"] for f in self.frames]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] in EVENT_TYPES]

    @property
    def items(self) -> list[dict[str, Any]]:
        return [f["payload"] for f in self.frames if f["type"] == "item"]

    def item(self, item_type: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [p["data"] for p in self.items if p["item_type"] == item_type]
        assert found, f"no item {item_type!r} in {self.types}\nstderr:\n{self.stderr}"
        return found[0]

    @property
    def terminal(self) -> dict[str, Any]:
        terminals = [f for f in self.events if f["type"] in ("run_error", "run_complete")]
        assert len(terminals) == 1, f"terminals: {terminals}\nstderr:\n{self.stderr}"
        return terminals[0]

    @property
    def outcome(self) -> dict[str, Any]:
        results = [f for f in self.frames if f["type"] == "run_result"]
        assert len(results) == 1, f"run_result frames: {results}\nstderr:\n{self.stderr}"
        assert self.frames[-1]["type"] == "run_result"
        outcome: dict[str, Any] = results[0]["outcome"]
        return outcome


AckFn = Callable[[SentFile], FileWriteAck]
FrameHook = Callable[[dict[str, Any], "Harness"], None]


def default_ack(f: SentFile) -> FileWriteAck:
    return FileWriteAck(write_id=f.write_id, ok=True, key=f"datasets/quarry/files/run_id=run-1/{f.filename}")


class Harness:
    """The runtime side of one executor process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def send(self, frame: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(encode_frame(frame))
        self.proc.stdin.flush()


def run_executor(
    request: Mapping[str, Any] | bytes | None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    ack: AckFn = default_ack,
    proxy_reply: Callable[[dict[str, Any]], ProxyUpdate] | None = None,
    on_frame: FrameHook | None = None,
    timeout: float = 60.0,
    close_stdin: bool = False,
) -> ExecResult:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "quarry_executor", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    err_chunks: list[bytes] = []
    err_thread = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    err_thread.start()
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    harness = Harness(proc)
    frames: list[dict[str, Any]] = []
    files: list[SentFile] = []
    partial: dict[int, list[dict[str, Any]]] = {}
    try:
        try:
            if isinstance(request, Mapping):
                proc.stdin.write((json.dumps(request) + "\n").encode())
            elif request is not None:
                proc.stdin.write(request)
            proc.stdin.flush()
            if close_stdin or request is None:
                proc.stdin.close()
        except BrokenPipeError:
            pass
        while True:
            frame = read_frame_sync(proc.stdout)  # type: ignore[arg-type]
            if frame is None:
                break
            frames.append(frame)
            kind = frame["type"]
            if kind == "file_write":
                f = SentFile(frame["write_id"], frame["filename"], frame["content_type"], frame["data"], 0)
                files.append(f)
                _reply(harness, ack(f))
            elif kind == "file_write_chunk":
                partial.setdefault(frame["write_id"], []).append(frame)
                if frame.get("is_last"):
                    parts = partial.pop(frame["write_id"])
                    f = SentFile(
                        frame["write_id"],
                        frame["filename"],
                        frame["content_type"],
                        b"".join(p["data"] for p in parts),
                        len(parts),
                    )
                    files.append(f)
                    _reply(harness, ack(f))
            elif kind == "rotate_proxy":
                reply = (
                    proxy_reply(frame)
                    if proxy_reply is not None
                    else ProxyUpdate(
                        run_id=frame["run_id"], seq=frame["seq"], ok=False, error="no proxy pool configured"
                    )
                )
                _reply(harness, reply)
            if on_frame is not None:
                on_frame(frame, harness)
        try:
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        code = proc.wait(timeout=timeout)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err_thread.join(timeout=10)
    return ExecResult(frames=frames, stderr=b"".join(err_chunks).decode("utf-8", "replace"), code=code, files=files)


def _reply(harness: Harness, frame: Any) -> None:
    try:
        harness.send(frame)
    except (BrokenPipeError, OSError):
        pass


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a local static site (one server per session)."""
    root = tmp_path_factory.mktemp("site")
    for name, body in SITE_PAGES.items():
        (root / name).write_text(body)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def script(tmp_path: Path) -> Callable[..., str]:
    """Write a script file; returns its absolute path."""

    def write(source: str, name: str = "script.py") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return str(path)

    return write


def make_request(script_path: str, **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"run_id": "run-1", "attempt": 1, "job_id": "job-7", "script": script_path, "job": {}}
    request.update(overrides)
    return request


@pytest.fixture
def execute(script: Callable[..., str]) -> Callable[..., ExecResult]:
    """Write ``source`` as a script and run it: ``execute(source, job=..., env=..., on_frame=...)``."""

    def go(source: str, *, env: Mapping[str, str] | None = None, **kwargs: Any) -> ExecResult:
        harness_keys = {"ack", "proxy_reply", "on_frame", "timeout", "args"}
        harness_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in harness_keys}
        return run_executor(make_request(script(source), **kwargs), env=env, **harness_kwargs)

    return go


@pytest.fixture
def run_exec() -> Callable[..., ExecResult]:
    """:func:`run_executor` itself, for tests that build the request or arguments by hand."""
    return run_executor


@pytest.fixture
def make_req() -> Callable[..., dict[str, Any]]:
    """:func:`make_request`: a valid run request for a script path, with overrides."""
    return make_request
