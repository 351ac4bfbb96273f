"""Shared by the notification and event-sink end-to-end tests: a real HTTP receiver on 127.0.0.1 that answers
from a script, free ports, and the Redis / NATS service checks (skip locally with a printed reason, fail when
``CI=true``)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest

REDIS_URL = os.environ.get("QUARRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_service(host: str, port: int, what: str) -> None:
    """Skip (printing why) when ``host:port`` does not accept connections; fail instead under ``CI=true``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        problem = f"{what} is not reachable at {host}:{port}: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem} (CI=true: .ci/run must start it)")
    print(f"SKIP: {problem}")
    pytest.skip(problem)


@attrs.frozen
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # time.monotonic() when the request arrived

    def json(self) -> Any:
        return json.loads(self.body)


#: A scripted "status" that never answers (until the receiver stops).
HANG = 0


class Receiver:
    """Records every POST and answers with the next scripted status (200 once the script is used up);
    :data:`HANG` holds the request without an answer."""

    def __init__(self, port: int = 0, script: tuple[int, ...] = ()) -> None:
        self.requests: list[Received] = []
        self.script = list(script)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, status, time.monotonic())
                    )
                if status == HANG:
                    receiver.stopping.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def delivered(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
