"""The executor's two pipes: frames out on ``ipc_fd`` and the run request plus control frames in on stdin.

:class:`FrameWriter` writes length-prefixed frames through an asyncio write-pipe transport. A write goes to the
pipe at once when it can; when the reader falls behind, the transport buffers up to its high-water mark and then
``wait_writable`` blocks, so a blocked pipe blocks ``await ctx.emit...`` and nothing grows without bound.

:class:`StdinReader` reads stdin: line 1 is the run request (JSON), then CBOR control frames.

:class:`Channel` ties them together: it hands out ``write_id``\\ s, keeps the futures waiting for
``file_write_ack`` (by ``write_id``) and ``proxy_update`` (by ``seq``), routes ``cancel`` to a callback and
records the first failure. Stdin EOF while a reply is pending fails the channel.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Callable
from typing import Any

import attrs

from quarry_core.errors import FrameDecodeError, StreamError
from quarry_core.protocol import (
    LENGTH_PREFIX_SIZE,
    MAX_PAYLOAD_SIZE,
    MAX_RUN_REQUEST_LINE,
    Cancel,
    FileWriteAck,
    ProxyUpdate,
    RunRequestFrame,
    Shutdown,
    TruncatedFrame,
    decode_payload,
    parse_control_frame,
)
from quarry_executor.diag import warn

__all__ = [
    "BadRunRequest",
    "Channel",
    "ChannelClosedError",
    "FrameWriter",
    "RequestLineError",
    "StdinReader",
    "WriterStatistics",
]

_HIGH_WATER = 1024 * 1024  # bytes the transport may hold before writers wait
_LOW_WATER = 256 * 1024


@attrs.frozen
class WriterStatistics:
    """A snapshot of a :class:`FrameWriter`."""

    frames: int
    bytes: int
    transport_buffer_bytes: int
    paused: bool


@attrs.frozen
class BadRunRequest:
    """A warm executor's ``run_request`` frame that failed validation (that run crashes, the process stays)."""

    run_id: str
    message: str


class ChannelClosedError(ConnectionError):
    """The frame pipe or stdin closed under the executor."""


class RequestLineError(ValueError):
    """The first stdin line is unusable (empty, too long)."""


# --------------------------------------------------------------------------- writing


class _PipeProtocol(asyncio.BaseProtocol):
    def __init__(self) -> None:
        self.paused = False
        self.lost = False
        self.error: BaseException | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.paused = False
        if exc is not None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut


class FrameWriter:
    """Writes encoded frames (prefix included) to a pipe with real backpressure.

    Use :meth:`open`; ``write`` is a coroutine that returns as soon as the bytes are with the transport and waits
    only while the transport holds more than its high-water mark. A descriptor that is not a pipe, socket or
    character device (a regular file) is written synchronously instead.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.WriteTransport | None = None
        self._protocol: _PipeProtocol | None = None
        self._error: BaseException | None = None
        self.frames = 0
        self.bytes = 0

    async def open(self) -> None:
        mode = os.fstat(self._fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            return  # synchronous fallback for regular files
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(self._fd, "wb", buffering=0, closefd=False)
        transport, protocol = await loop.connect_write_pipe(_PipeProtocol, pipe)
        transport.set_write_buffer_limits(high=_HIGH_WATER, low=_LOW_WATER)
        self._loop = loop
        self._transport = transport
        self._protocol = protocol

    def write_nowait(self, frame: bytes) -> None:
        """Hand one frame to the pipe without waiting; afterwards check :attr:`must_wait`.

        The frame is written to the pipe at once (to the transport's buffer while the pipe is full), so it is
        the runtime's to read even if this process dies right after. Raises the pipe's original error
        (``BrokenPipeError``...) if it failed, also when an earlier buffered write failed after its call had
        returned.
        """
        if self._error is not None:
            raise self._error
        transport = self._transport
        if transport is None:
            self._write_sync(frame)
        else:
            protocol = self._protocol
            assert protocol is not None
            # Straight to the pipe (or the transport's buffer when the pipe is full): once ``await emit...``
            # returns, the frame survives the executor dying on the very next line.
            self._send(frame, transport, protocol)
        self.frames += 1
        self.bytes += len(frame)

    def _send(self, data: bytes, transport: asyncio.WriteTransport, protocol: _PipeProtocol) -> None:
        """Give ``data`` to the pipe: straight to the descriptor when the transport holds nothing (as the
        transport itself would, so a failure surfaces here as the original ``OSError``)."""
        if protocol.lost or transport.is_closing():
            self._error = self._closed_error()
            raise self._error
        if transport.get_write_buffer_size() == 0:
            try:
                n = os.write(self._fd, data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                self._error = exc
                protocol.error = exc
                transport.abort()
                raise
            if n < len(data):
                transport.write(memoryview(data)[n:])
        else:
            transport.write(data)

    @property
    def must_wait(self) -> bool:
        """``True`` while the transport holds more than its high-water mark (or the pipe is gone)."""
        protocol = self._protocol
        return protocol is not None and (protocol.paused or protocol.lost or self._error is not None)

    async def wait_writable(self) -> None:
        """Wait until the transport drained below its low-water mark; raise if the pipe went away."""
        protocol = self._protocol
        if protocol is None:
            return
        while protocol.paused and self._error is None:
            await protocol.wait()
        if self._error is not None:
            raise self._error
        if protocol.lost:
            raise self._closed_error()

    def statistics(self) -> WriterStatistics:
        transport = self._transport
        return WriterStatistics(
            frames=self.frames,
            bytes=self.bytes,
            transport_buffer_bytes=transport.get_write_buffer_size() if transport is not None else 0,
            paused=self._protocol is not None and self._protocol.paused,
        )

    async def write(self, frame: bytes) -> None:
        """``write_nowait`` then, above the high-water mark, ``wait_writable``."""
        self.write_nowait(frame)
        if self.must_wait:
            await self.wait_writable()

    def _write_sync(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _closed_error(self) -> BaseException:
        protocol = self._protocol
        if protocol is not None and protocol.error is not None:
            return protocol.error
        return BrokenPipeError("frame pipe closed")

    async def close(self, timeout: float | None = 10.0) -> None:
        """Flush what the transport holds and close the pipe (bounded by ``timeout``; ``None``: until drained or
        the reader is gone)."""
        transport, protocol = self._transport, self._protocol
        if transport is None or protocol is None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            return
        if not protocol.lost:
            transport.close()
            try:
                async with asyncio.timeout(timeout):
                    while not protocol.lost:
                        await protocol.wait()
            except TimeoutError:
                transport.abort()
        try:
            os.close(self._fd)
        except OSError:
            pass


# --------------------------------------------------------------------------- reading


class StdinReader:
    """Reads stdin as an asyncio stream: the first line, then length-prefixed frames."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._reader: asyncio.StreamReader | None = None

    @property
    def reader(self) -> asyncio.StreamReader:
        assert self._reader is not None, "StdinReader.open() first"
        return self._reader

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._reader = asyncio.StreamReader(limit=MAX_RUN_REQUEST_LINE, loop=loop)
        mode = os.fstat(self._fd).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode):
            pipe = os.fdopen(self._fd, "rb", buffering=0, closefd=False)
            protocol = asyncio.StreamReaderProtocol(self.reader)
            await loop.connect_read_pipe(lambda: protocol, pipe)
            return
        # a regular file (``< request.json``): feed the stream from a daemon thread
        reader = self.reader

        def pump() -> None:
            try:
                while True:
                    chunk = os.read(self._fd, 1 << 16)
                    if not chunk:
                        break
                    loop.call_soon_threadsafe(reader.feed_data, chunk)
            except OSError:
                pass
            try:
                loop.call_soon_threadsafe(reader.feed_eof)
            except RuntimeError:
                pass  # the loop is gone

        threading.Thread(target=pump, name="quarry-stdin", daemon=True).start()

    async def read_request_line(self) -> bytes:
        """Line 1 without its newline. ``RequestLineError`` when stdin is empty or the line is too long."""
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial
        except asyncio.LimitOverrunError:
            raise RequestLineError(
                f"run request line exceeds {MAX_RUN_REQUEST_LINE} bytes (MAX_RUN_REQUEST_LINE)"
            ) from None
        if len(line) > MAX_RUN_REQUEST_LINE:
            raise RequestLineError(f"run request line exceeds {MAX_RUN_REQUEST_LINE} bytes (MAX_RUN_REQUEST_LINE)")
        if not line.strip():
            raise RequestLineError("stdin is empty, expected JSON input")
        return line.rstrip(b"\r\n")

    async def read_frame(self) -> dict[str, Any] | None:
        """The next control frame as a map; ``None`` at EOF (a partial frame at EOF is dropped)."""
        try:
            prefix = await self.reader.readexactly(LENGTH_PREFIX_SIZE)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                warn("partial control frame at stdin EOF dropped")
            return None
        n = int.from_bytes(prefix, "big")
        if n == 0 or n > MAX_PAYLOAD_SIZE:
            raise FrameDecodeError(f"control frame length {n} out of range")
        try:
            body = await self.reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise TruncatedFrame("partial control frame at stdin EOF") from None
        return decode_payload(body)


# --------------------------------------------------------------------------- the channel


class Channel:
    """Frame writer + control reader + the bookkeeping of replies the executor waits for."""

    def __init__(self, writer: FrameWriter, stdin: StdinReader) -> None:
        self.writer = writer
        self.stdin = stdin
        self.failure: BaseException | None = None
        self.eof = False
        self._next_write_id = 1
        self._acks: dict[int, asyncio.Future[FileWriteAck]] = {}
        self._proxy_updates: dict[int, asyncio.Future[ProxyUpdate]] = {}
        self._on_cancel: Callable[[Cancel], None] | None = None
        # warm mode (D12): ``run_request`` / ``shutdown`` frames, a bad run request and
        # stdin EOF (``None``) go here; without it they are ignored with a warning
        self.on_warm: Callable[[RunRequestFrame | Shutdown | BadRunRequest | None], None] | None = None
        self._reader_task: asyncio.Task[None] | None = None

    # ---- failure

    @property
    def healthy(self) -> bool:
        return self.failure is None

    def fail(self, exc: BaseException) -> None:
        """Record the first failure; every pending reply fails with it."""
        if self.failure is None:
            self.failure = exc
        pending: list[asyncio.Future[Any]] = [*self._acks.values(), *self._proxy_updates.values()]
        for fut in pending:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # waiters still get it; nobody waiting is not worth a log line
        self._acks.clear()
        self._proxy_updates.clear()

    # ---- replies

    def next_write_id(self) -> int:
        wid = self._next_write_id
        self._next_write_id += 1
        return wid

    def expect_ack(self, write_id: int) -> asyncio.Future[FileWriteAck]:
        fut: asyncio.Future[FileWriteAck] = asyncio.get_running_loop().create_future()
        self._acks[write_id] = fut
        return fut

    def forget_ack(self, write_id: int) -> None:
        fut = self._acks.pop(write_id, None)
        if fut is not None and fut.done() and not fut.cancelled():
            fut.exception()  # retrieved: the caller raised the write error itself

    def expect_proxy_update(self, seq: int) -> asyncio.Future[ProxyUpdate]:
        fut: asyncio.Future[ProxyUpdate] = asyncio.get_running_loop().create_future()
        self._proxy_updates[seq] = fut
        return fut

    def forget_proxy_update(self, seq: int) -> None:
        fut = self._proxy_updates.pop(seq, None)
        if fut is not None and fut.done() and not fut.cancelled():
            fut.exception()

    def check_replies_possible(self) -> None:
        """After stdin EOF a reply can never come: waiting for one fails the channel."""
        if self.eof and self.failure is None:
            self.fail(ChannelClosedError("stdin closed while a reply from the runtime was pending"))

    # ---- control frames

    def start_reader(self, on_cancel: Callable[[Cancel], None]) -> None:
        """Read control frames in the background; ``on_cancel`` receives ``cancel`` frames."""
        self._on_cancel = on_cancel
        self._reader_task = asyncio.get_running_loop().create_task(self._read_control(), name="quarry-control")

    async def stop_reader(self) -> None:
        task = self._reader_task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:
                pass

    async def _read_control(self) -> None:
        while True:
            try:
                d = await self.stdin.read_frame()
            except TruncatedFrame:
                warn("partial control frame at stdin EOF dropped")
                d = None
            except FrameDecodeError as exc:
                # the stream can no longer be trusted to be aligned on frame boundaries
                warn(f"undecodable control frame, stdin no longer read: {exc}")
                d = None
            except (OSError, ValueError) as exc:
                warn(f"stdin read failed: {exc}")
                d = None
            if d is None:
                self.eof = True
                if self._acks or self._proxy_updates:
                    self.fail(ChannelClosedError("stdin closed while a reply from the runtime was pending"))
                if self.on_warm is not None:
                    self.on_warm(None)
                return
            self._dispatch(d)

    def _dispatch(self, d: dict[str, Any]) -> None:
        try:
            frame = parse_control_frame(d)
        except StreamError as exc:
            if self.on_warm is not None and d.get("type") == "run_request":
                run_id = d.get("run_id")
                self.on_warm(BadRunRequest(run_id if isinstance(run_id, str) else "", str(exc)))
                return
            warn(f"bad control frame ignored: {exc}")
            return
        if frame is None:
            warn(f"unknown control frame type ignored: {d.get('type')!r}")
        elif isinstance(frame, FileWriteAck):
            fut = self._acks.pop(frame.write_id, None)
            if fut is None:
                warn(f"file_write_ack for unknown write_id {frame.write_id} ignored")
            elif not fut.done():
                fut.set_result(frame)
        elif isinstance(frame, ProxyUpdate):
            pfut = self._proxy_updates.pop(frame.seq, None)
            if pfut is None:
                warn(f"proxy_update for unknown seq {frame.seq} ignored")
            elif not pfut.done():
                pfut.set_result(frame)
        elif isinstance(frame, Cancel):
            if self._on_cancel is not None:
                self._on_cancel(frame)
        elif isinstance(frame, (RunRequestFrame, Shutdown)):
            if self.on_warm is not None:
                self.on_warm(frame)
            else:
                warn(f"{frame.KIND} control frame ignored: this executor is not in warm mode")
