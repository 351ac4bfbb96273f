"""In-process tests of the frame channel and ``ctx.emit``: backpressure, failures, latch, replies."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quarry_core.errors import EmitValidationError, SinkFailedError, TerminalEventError
from quarry_core.protocol import Cancel, FileWriteAck, ProxyUpdate, RunRequest, encode_frame, read_frame_sync
from quarry_executor.channel import Channel, ChannelClosedError, FrameWriter, StdinReader
from quarry_executor.emit import Emitter, RunStream
from quarry_executor.storage import Storage

REQUEST = RunRequest(run_id="r1", attempt=1, script="/x.py", job={})


class Rig:
    """A channel over two OS pipes: ``out_r`` receives frames, ``ctl_w`` sends control frames."""

    def __init__(self) -> None:
        self.out_r, out_w = os.pipe()
        ctl_r, self.ctl_w = os.pipe()
        self.writer = FrameWriter(out_w)
        self.stdin = StdinReader(ctl_r)
        self.channel = Channel(self.writer, self.stdin)
        self.stream = RunStream(self.channel, REQUEST)
        self.emit = Emitter(self.stream, proxy_timeout=0.5)
        self.storage = Storage(self.stream)
        self.cancels: list[Cancel] = []

    async def open(self) -> None:
        await self.writer.open()
        await self.stdin.open()
        self.channel.start_reader(self.cancels.append)

    def send_control(self, frame: Any) -> None:
        os.write(self.ctl_w, encode_frame(frame))

    def read_all(self) -> list[dict[str, Any]]:
        frames = []
        with os.fdopen(self.out_r, "rb", closefd=True) as f:
            while (frame := read_frame_sync(f)) is not None:
                frames.append(frame)
        return frames


def run_rig(
    body: Callable[[Rig], Awaitable[None]], *, gate: threading.Event | None = None, read: bool = True
) -> list[dict[str, Any]]:
    """Run ``body`` with a fresh rig; a thread reads the frames (after ``gate`` is set, if given)."""
    frames: list[dict[str, Any]] = []
    threads: list[threading.Thread] = []

    def read_frames(rig: Rig) -> None:
        if gate is not None:
            gate.wait(30)
        frames.extend(rig.read_all())

    async def main() -> None:
        rig = Rig()
        await rig.open()
        if read:
            threads.append(threading.Thread(target=read_frames, args=(rig,), daemon=True))
            threads[0].start()
        try:
            await body(rig)
        finally:
            await rig.channel.stop_reader()
            await rig.writer.close()
            os.close(rig.ctl_w)

    asyncio.run(main())
    for t in threads:
        t.join(10)
    return frames


def test_seq_validation_and_latch() -> None:
    async def body(rig: Rig) -> None:
        with pytest.raises(EmitValidationError):
            await rig.emit.item("", {})
        await rig.emit.item("a", {"x": 1})
        await rig.emit.run_complete()
        assert rig.stream.terminal == "run_complete"
        for call in (
            rig.emit.item("b", {}),
            rig.emit.item("", {}),  # the latch comes before validation
            rig.emit.run_error("t", "m"),
            rig.storage.put("f.txt", b"x"),
        ):
            with pytest.raises(TerminalEventError):
                await call
        assert rig.stream.healthy

    frames = run_rig(body)
    assert [(f["type"], f["seq"]) for f in frames] == [("item", 1), ("run_complete", 2)]


def test_backpressure_blocks_emit_without_unbounded_buffering() -> None:
    payload = {"blob": "x" * 100_000}
    gate = threading.Event()

    async def body(rig: Rig) -> None:
        async def flood() -> None:
            for _ in range(200):  # ~20 MB, far beyond pipe + transport buffers
                await rig.emit.item("big", payload)

        task = asyncio.create_task(flood())
        await asyncio.sleep(0.3)
        assert not task.done(), "emit must block while nobody reads the pipe"
        transport = rig.writer._transport
        assert transport is not None
        assert transport.get_write_buffer_size() <= 1024 * 1024 + 200_000
        assert rig.stream.seq < 200
        stats = rig.writer.statistics()
        assert stats.paused and stats.transport_buffer_bytes <= 1024 * 1024 + 200_000
        gate.set()
        await asyncio.wait_for(task, 30)

    frames = run_rig(body, gate=gate)
    assert [f["seq"] for f in frames] == list(range(1, 201))


def test_failed_write_fails_the_channel() -> None:
    async def body(rig: Rig) -> None:
        await rig.emit.item("a", {})
        os.close(rig.out_r)  # the runtime went away
        # frames of one loop iteration are coalesced, so the failure may surface on a later call: the first
        # call to see it raises the original error
        first_error: BaseException | None = None
        for _ in range(10):
            try:
                await rig.emit.item("b", {})
            except Exception as exc:
                first_error = exc
                break
            await asyncio.sleep(0)
        assert isinstance(first_error, BrokenPipeError)
        assert not rig.stream.healthy
        with pytest.raises(SinkFailedError) as info:
            await rig.emit.item("c", {})
        assert isinstance(info.value.__cause__, BrokenPipeError)
        with pytest.raises(SinkFailedError):
            await rig.emit.run_complete()
        assert rig.stream.terminal is None

    run_rig(body, read=False)


def test_acks_proxy_updates_and_cancel_are_routed() -> None:
    async def body(rig: Rig) -> None:
        async def put(name: str) -> str:
            return (await rig.storage.put(name, b"data")).key

        puts = asyncio.gather(put("a.txt"), put("b.txt"))
        await asyncio.sleep(0.05)
        # acks in any order are matched by write_id; unknown ids are ignored
        rig.send_control(FileWriteAck(write_id=99, ok=True, key="nobody"))
        rig.send_control(FileWriteAck(write_id=2, ok=True, key="k2"))
        rig.send_control(FileWriteAck(write_id=1, ok=True, key="k1"))
        assert list(await asyncio.wait_for(puts, 5)) == ["k1", "k2"]

        rotation = asyncio.create_task(rig.emit.rotate_proxy("blocked"))
        await asyncio.sleep(0.05)
        rig.send_control(ProxyUpdate(run_id="r1", seq=1, ok=False, error="no proxy pool configured"))
        result = await asyncio.wait_for(rotation, 5)
        assert (result.rotated, result.error) == (False, "no proxy pool configured")

        no_reply = await rig.emit.rotate_proxy()  # nobody answers within the (shortened) timeout
        assert no_reply.rotated is False and "no proxy_update within" in (no_reply.error or "")

        os.write(rig.ctl_w, encode_frame({"type": "mystery"}))
        rig.send_control(Cancel(run_id="r1", reason="timeout", grace_ms=100))
        await asyncio.sleep(0.05)
        assert [c.reason for c in rig.cancels] == ["timeout"]

    frames = run_rig(body)
    assert [f["type"] for f in frames] == ["file_write", "file_write", "rotate_proxy", "rotate_proxy"]
    assert [f["seq"] for f in frames if "seq" in f] == [1, 2]


def test_stdin_eof_with_a_pending_ack_fails_the_channel() -> None:
    async def body(rig: Rig) -> None:
        put = asyncio.create_task(rig.storage.put("a.txt", b"x"))
        await asyncio.sleep(0.05)
        os.close(rig.ctl_w)
        rig.ctl_w = os.open(os.devnull, os.O_WRONLY)
        with pytest.raises(ChannelClosedError):
            await asyncio.wait_for(put, 5)
        with pytest.raises(SinkFailedError) as info:
            await rig.emit.item("x", {})
        assert isinstance(info.value.__cause__, ChannelClosedError)

    run_rig(body)


def test_stdin_request_line_then_frames() -> None:
    async def main() -> None:
        r, w = os.pipe()
        os.write(w, b'{"run_id": "r"}\n' + encode_frame(Cancel(run_id="r", reason="signal", grace_ms=5)))
        os.close(w)
        reader = StdinReader(r)
        await reader.open()
        assert await reader.read_request_line() == b'{"run_id": "r"}'
        assert (await reader.read_frame()) == {"type": "cancel", "run_id": "r", "reason": "signal", "grace_ms": 5}
        assert await reader.read_frame() is None

    asyncio.run(main())


def test_frame_writer_on_a_regular_file(tmp_path: Any) -> None:
    path = tmp_path / "frames.bin"

    async def main() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        writer = FrameWriter(fd)
        await writer.open()
        await writer.write(encode_frame({"type": "run_result", "run_id": "r", "outcome": {"status": "completed"}}))
        await writer.close()

    asyncio.run(main())
    assert read_frame_sync(io.BytesIO(path.read_bytes()))["type"] == "run_result"  # type: ignore[index]
