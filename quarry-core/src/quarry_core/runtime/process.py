"""The executor child process: spawn in a new session, control frames on stdin, frames on stdout, stderr
forwarded live and its tail kept (CONTRACT_RUN, executor launch and stopping)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio

from quarry_core.errors import ExecutorLaunchError
from quarry_core.protocol.codec import FrameReader, encode_frame

__all__ = ["STDERR_TAIL_BYTES", "ExecutorProcess", "default_stderr_printer"]

STDERR_TAIL_BYTES = 64 * 1024
_STREAM_LIMIT = 1024 * 1024


def default_stderr_printer(line: str) -> None:
    sys.stderr.write(f"[executor] {line}\n")
    sys.stderr.flush()


class ExecutorProcess:
    """A running executor. Use :meth:`start`; always finish with :meth:`wait` or :meth:`stop`."""

    def __init__(self, proc: asyncio.subprocess.Process, on_stderr: Callable[[str], None]) -> None:
        self._proc = proc
        self._on_stderr = on_stderr
        assert proc.stdout is not None and proc.stdin is not None
        self.reader = FrameReader(proc.stdout)
        self._stdin = proc.stdin
        self._write_lock = anyio.Lock()
        self._tail = bytearray()
        self.last_stderr_line = ""
        self._stderr_task = asyncio.create_task(self._pump_stderr())
        self.stopped_by_runtime = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @classmethod
    async def start(
        cls,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        on_stderr: Callable[[str], None] = default_stderr_printer,
        cwd: str | None = None,
    ) -> ExecutorProcess:
        """Spawn ``command`` in a new session with binary pipes. Raises :class:`ExecutorLaunchError`."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                limit=_STREAM_LIMIT,
            )
        except (OSError, ValueError) as exc:
            raise ExecutorLaunchError(f"{type(exc).__name__}: {exc}") from exc
        return cls(proc, on_stderr)

    async def _pump_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the limit: take what is there
                line = await stream.read(_STREAM_LIMIT)
            except Exception:
                return
            if not line:
                return
            self._tail += line
            if len(self._tail) > STDERR_TAIL_BYTES:
                del self._tail[: len(self._tail) - STDERR_TAIL_BYTES]
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.strip():
                self.last_stderr_line = text.strip()
            with contextlib.suppress(Exception):
                self._on_stderr(text)

    @property
    def stderr_tail(self) -> str:
        return self._tail.decode("utf-8", "replace")

    def reset_stderr_tail(self) -> None:
        """Start a new tail (a warm executor's next run keeps only its own stderr)."""
        self._tail.clear()
        self.last_stderr_line = ""

    async def send_bytes(self, data: bytes) -> None:
        async with self._write_lock:
            self._stdin.write(data)
            await self._stdin.drain()

    async def send(self, frame: Any) -> None:
        """Write one control frame (anything with ``to_wire()``)."""
        await self.send_bytes(encode_frame(frame))

    async def close_stdin(self) -> None:
        async with self._write_lock:
            if not self._stdin.is_closing():
                self._stdin.close()
            with contextlib.suppress(Exception):
                await self._stdin.wait_closed()

    async def wait(self, timeout: float | None = None) -> int | None:
        """Wait for exit; ``None`` if it is still running after ``timeout``."""
        try:
            code = await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError:
            return None
        await self._drain_stderr()
        return code

    async def _drain_stderr(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 2.0)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, grace: float = 2.0) -> int:
        """SIGTERM to the process group, ``grace`` seconds, then SIGKILL. Returns the exit status."""
        self.stopped_by_runtime = True
        if self._proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            code = await self.wait(grace)
            if code is not None:
                self._signal_group(signal.SIGKILL)  # stragglers in the group (browsers)
                return code
            self._signal_group(signal.SIGKILL)
        code = await self.wait(10.0)
        self._signal_group(signal.SIGKILL)
        return code if code is not None else -signal.SIGKILL

    def kill_group(self) -> None:
        """SIGKILL the whole group at once (second signal)."""
        self.stopped_by_runtime = True
        self._signal_group(signal.SIGKILL)

    def reap_group(self) -> None:
        """After a normal exit, kill whatever the executor left in its group (orphaned browsers)."""
        self._signal_group(signal.SIGKILL)
