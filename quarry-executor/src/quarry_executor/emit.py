"""``ctx.emit`` (runtime.md §15) and the run's frame stream it shares with ``ctx.storage``.

:class:`RunStream` owns what every emit and storage call serialises on: one FIFO lock (``anyio.Lock``), the
event ``seq`` (assigned at write time), the terminal latch and the channel's failure state.

Rules, in the order a call meets them:

1. the terminal latch → :class:`~quarry_core.errors.TerminalEventError` (never poisons anything);
2. a failed channel → :class:`~quarry_core.errors.SinkFailedError` with the original error as ``__cause__``;
3. argument validation → :class:`~quarry_core.errors.EmitValidationError` before anything is written: no
   ``seq`` is used and the channel is unaffected;
4. under the lock: encode, write, then count the ``seq`` and, for a terminal, set the latch. A failed write
   fails the channel and that call raises the original error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs

from quarry_core.errors import EmitValidationError, SinkFailedError, TerminalEventError
from quarry_core.protocol import (
    LOG_LEVELS,
    MAX_ARTIFACT_SIZE,
    MAX_CHUNK_SIZE,
    MAX_STACK_SIZE,
    ProxyUpdate,
    RunRequest,
    encode_frame,
    json_value_error,
)
from quarry_core.protocol.codec import speedups
from quarry_core.sdk import ProxyRotation, RedactedProxy
from quarry_executor.channel import Channel
from quarry_executor.envelope import EnvelopeFactory

__all__ = ["PROXY_UPDATE_TIMEOUT", "Emitter", "ProxyApplier", "RunStream", "StreamStatistics"]

#: seconds ``rotate_proxy`` waits for the runtime's ``proxy_update``
PROXY_UPDATE_TIMEOUT = 30.0

#: let other tasks (the control reader, the transport) run at least once per this many writes
_YIELD_EVERY = 128

#: applies a new proxy endpoint (with password) and returns it redacted
ProxyApplier = Callable[[Mapping[str, Any]], Awaitable[RedactedProxy | None]]


def _bad(message: str) -> EmitValidationError:
    return EmitValidationError(message)


def _need_text(value: object, name: str, *, nonempty: bool = True) -> str:
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string, got {type(value).__name__}")
    if nonempty and not value:
        raise _bad(f"{name} must not be empty")
    return value


def _opt_text(value: object, name: str, *, nonempty: bool = True) -> str | None:
    if value is None:
        return None
    return _need_text(value, name, nonempty=nonempty)


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _flat_ok(d: dict[Any, Any]) -> bool:
    """Fast path for the common payload: text keys and scalar values only (nested values say ``False``)."""
    for k, v in d.items():
        if type(k) is not str:
            return False
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if _INT64_MIN <= v <= _INT64_MAX:
                continue
            return False
        if t is float and v - v == 0.0:  # finite: inf - inf and nan - nan are nan
            continue
        return False
    return True


#: :func:`_flat_ok` at C speed (quarry-speedups' ``flat_json_map``, the same answer for every input) when installed
_flat: Callable[[dict[Any, Any]], bool] = getattr(speedups(), "flat_json_map", None) or _flat_ok


def _need_map(value: object, name: str) -> dict[str, Any]:
    if type(value) is dict and _flat(value):
        return value
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            raise _bad(f"{name} must be a mapping, got {type(value).__name__}")
        value = dict(value)
    err = json_value_error(value, name)
    if err is not None:
        raise _bad(err)
    return value  # type: ignore[return-value]


@attrs.frozen
class StreamStatistics:
    """A snapshot of a :class:`RunStream`."""

    seq: int
    terminal: str | None
    healthy: bool
    locked: bool


class RunStream:
    """The ordered, seq-numbered frame stream of one run. Shared by ``ctx.emit`` and ``ctx.storage``."""

    def __init__(self, channel: Channel, request: RunRequest) -> None:
        self.channel = channel
        self.run_id = request.run_id
        self.lock = anyio.Lock(fast_acquire=True)
        self.seq = 0
        self.terminal: str | None = None
        self.terminal_payload: dict[str, Any] | None = None
        self._envelopes = EnvelopeFactory(request)
        self._writes = 0

    # ---- state

    def statistics(self) -> StreamStatistics:
        return StreamStatistics(seq=self.seq, terminal=self.terminal, healthy=self.healthy, locked=self.lock.locked())

    @property
    def healthy(self) -> bool:
        return self.channel.failure is None

    def check_open(self) -> None:
        """Raise if no further call may write: after the terminal or a channel failure."""
        if self.terminal is not None:
            raise TerminalEventError(f"the run already ended with {self.terminal}; no further emit or storage calls")
        failure = self.channel.failure
        if failure is not None:
            raise SinkFailedError(f"the frame channel failed earlier in this run: {failure}") from failure

    # ---- writing (call with the lock held)

    async def write_frame(self, frame: bytes) -> None:
        """Write one encoded frame (lock held); a failure fails the channel and re-raises the original error."""
        writer = self.channel.writer
        try:
            writer.write_nowait(frame)
            if writer.must_wait:
                await writer.wait_writable()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.channel.fail(exc)
            raise

    def _write_event_nowait(self, event_type: str, payload: dict[str, Any]) -> None:
        seq = self.seq + 1
        try:
            frame = self._envelopes.encode(event_type, payload, seq)
        except ValueError as exc:
            raise EmitValidationError(f"{event_type}: {exc}") from None
        try:
            self.channel.writer.write_nowait(frame)
        except BaseException as exc:
            self.channel.fail(exc)
            raise
        self.seq = seq
        if event_type == "run_error" or event_type == "run_complete":
            self.terminal = event_type
            self.terminal_payload = payload

    async def write_event(self, event_type: str, payload: dict[str, Any]) -> int:
        """Encode and write one event with the next ``seq``; returns it. Lock held, ``check_open`` done."""
        self._write_event_nowait(event_type, payload)
        writer = self.channel.writer
        if writer.must_wait:
            try:
                await writer.wait_writable()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self.channel.fail(exc)
                raise
        return self.seq

    async def send_event(self, event_type: str, payload: dict[str, Any]) -> int:
        """Check and write one event in call order. The common path of every emit call.

        When nobody holds or waits for the lock, the frame is written synchronously: no other task can run
        in between, so the order is the one the lock would give. Waiting for the pipe happens under the lock.
        """
        lock = self.lock
        writer = self.channel.writer
        if not lock.locked() and not writer.must_wait:
            self.check_open()
            self._write_event_nowait(event_type, payload)
            seq = self.seq
            if writer.must_wait:
                async with lock:
                    try:
                        await writer.wait_writable()
                    except BaseException as exc:
                        if not isinstance(exc, asyncio.CancelledError):
                            self.channel.fail(exc)
                        raise
        else:
            async with lock:
                self.check_open()
                seq = await self.write_event(event_type, payload)
        if self._yield_due():  # maybe_yield, without a coroutine per call
            await asyncio.sleep(0)
        return seq

    def _yield_due(self) -> bool:
        """Count one write; ``True`` once every :data:`_YIELD_EVERY` writes."""
        self._writes += 1
        if self._writes >= _YIELD_EVERY:
            self._writes = 0
            return True
        return False

    async def maybe_yield(self) -> None:
        """Let other tasks (the control reader, a cancellation) run now and then during a tight emit loop."""
        if self._yield_due():
            await asyncio.sleep(0)


class Emitter:
    """Implements :class:`quarry_core.sdk.EmitAPI` on a :class:`RunStream`."""

    def __init__(
        self,
        stream: RunStream,
        *,
        proxy_applier: ProxyApplier | None = None,
        current_proxy: Callable[[], RedactedProxy | None] | None = None,
        proxy_timeout: float = PROXY_UPDATE_TIMEOUT,
    ) -> None:
        self._stream = stream
        self._proxy_applier = proxy_applier
        self._current_proxy = current_proxy
        self._proxy_timeout = proxy_timeout

    def bind_proxy(self, applier: ProxyApplier | None, current: Callable[[], RedactedProxy | None] | None) -> None:
        """Set how ``rotate_proxy`` applies a new endpoint and reads the current one (the host does)."""
        self._proxy_applier = applier
        self._current_proxy = current

    def _check_latch(self) -> None:
        if self._stream.terminal is not None:
            self._stream.check_open()

    # ---- events

    async def item(self, item_type: str, data: Mapping[str, Any]) -> None:
        if self._stream.terminal is not None:
            self._stream.check_open()
        if type(item_type) is not str or not item_type:
            _need_text(item_type, "item_type")
        await self._stream.send_event("item", {"item_type": item_type, "data": _need_map(data, "data")})

    async def artifact(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self._check_latch()
        _need_text(name, "name")
        _need_text(content_type, "content_type")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _bad(f"artifact data must be bytes-like, got {type(data).__name__}")
        view = memoryview(data).cast("B")
        size = view.nbytes
        if size > MAX_ARTIFACT_SIZE:
            raise _bad(f"artifact of {size} bytes exceeds the limit of {MAX_ARTIFACT_SIZE}")
        artifact_id = str(uuid.uuid4())
        stream = self._stream
        async with stream.lock:
            stream.check_open()
            chunk_seq = 0
            offset = 0
            while True:
                piece = bytes(view[offset : offset + MAX_CHUNK_SIZE])
                offset += len(piece)
                chunk_seq += 1
                is_last = offset >= size
                frame = encode_frame(
                    {
                        "type": "artifact_chunk",
                        "artifact_id": artifact_id,
                        "seq": chunk_seq,
                        "is_last": is_last,
                        "data": piece,
                    }
                )
                await stream.write_frame(frame)
                if is_last:
                    break
            await stream.write_event(
                "artifact",
                {"artifact_id": artifact_id, "name": name, "content_type": content_type, "size_bytes": size},
            )
        await stream.maybe_yield()
        return artifact_id

    async def checkpoint(self, checkpoint_id: str, note: str | None = None) -> None:
        self._check_latch()
        payload: dict[str, Any] = {"checkpoint_id": _need_text(checkpoint_id, "checkpoint_id")}
        if _opt_text(note, "note", nonempty=False) is not None:
            payload["note"] = note
        await self._stream.send_event("checkpoint", payload)

    async def enqueue(
        self,
        target: str,
        params: Mapping[str, Any] | None = None,
        source: str | None = None,
        category: str | None = None,
    ) -> None:
        self._check_latch()
        payload: dict[str, Any] = {
            "target": _need_text(target, "target"),
            "params": {} if params is None else _need_map(params, "params"),
        }
        if _opt_text(source, "source") is not None:
            payload["source"] = source
        if _opt_text(category, "category") is not None:
            payload["category"] = category
        await self._stream.send_event("enqueue", payload)

    async def rotate_proxy(self, reason: str | None = None) -> ProxyRotation:
        self._check_latch()
        payload: dict[str, Any] = {}
        if _opt_text(reason, "reason", nonempty=False) is not None:
            payload["reason"] = reason
        stream = self._stream
        channel = stream.channel
        async with stream.lock:
            stream.check_open()
            seq = stream.seq + 1
            reply = channel.expect_proxy_update(seq)
            try:
                await stream.write_event("rotate_proxy", payload)
            except BaseException:
                channel.forget_proxy_update(seq)
                raise
        channel.check_replies_possible()
        try:
            update: ProxyUpdate = await asyncio.wait_for(asyncio.shield(reply), self._proxy_timeout)
        except TimeoutError:
            channel.forget_proxy_update(seq)
            return ProxyRotation(
                rotated=False, proxy=self._current(), error=f"no proxy_update within {self._proxy_timeout:g} s"
            )
        if not update.ok:
            return ProxyRotation(rotated=False, proxy=self._current(), error=update.error or "rotation refused")
        if not update.changed or update.proxy is None:
            return ProxyRotation(rotated=False, proxy=self._current(), error=update.error)
        if self._proxy_applier is None:
            return ProxyRotation(rotated=False, proxy=self._current(), error="this executor cannot apply proxies")
        try:
            applied = await self._proxy_applier(update.proxy)
        except Exception as exc:
            return ProxyRotation(
                rotated=False,
                proxy=self._current(),
                error=f"applying the new proxy failed: {type(exc).__name__}: {exc}",
            )
        return ProxyRotation(rotated=True, proxy=applied)

    def _current(self) -> RedactedProxy | None:
        return self._current_proxy() if self._current_proxy is not None else None

    async def log(self, level: str, message: str, fields: Mapping[str, Any] | None = None) -> None:
        self._check_latch()
        if level not in LOG_LEVELS:
            raise _bad(f"level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        payload: dict[str, Any] = {"level": level, "message": _need_text(message, "message", nonempty=False)}
        if fields is not None:
            payload["fields"] = _need_map(fields, "fields")
        await self._stream.send_event("log", payload)

    async def debug(self, message: str, fields: Mapping[str, Any] | None = None) -> None:
        await self.log("debug", message, fields)

    async def info(self, message: str, fields: Mapping[str, Any] | None = None) -> None:
        await self.log("info", message, fields)

    async def warn(self, message: str, fields: Mapping[str, Any] | None = None) -> None:
        await self.log("warn", message, fields)

    async def error(self, message: str, fields: Mapping[str, Any] | None = None) -> None:
        await self.log("error", message, fields)

    async def run_error(self, error_type: str, message: str, stack: str | None = None) -> None:
        await self.host_run_error(error_type, message, stack)

    async def host_run_error(
        self, error_type: str, message: str, stack: str | None = None, *, extra: Mapping[str, Any] | None = None
    ) -> None:
        """``run_error`` plus payload keys only the host adds (``error_snapshot``); not part of ``EmitAPI``."""
        self._check_latch()
        payload: dict[str, Any] = {
            "error_type": _need_text(error_type, "error_type"),
            "message": _need_text(message, "message", nonempty=False),
        }
        if _opt_text(stack, "stack", nonempty=False) is not None:
            assert stack is not None
            if len(stack.encode("utf-8", "surrogatepass")) > MAX_STACK_SIZE:
                raise _bad(f"stack is longer than {MAX_STACK_SIZE} bytes")
            payload["stack"] = stack
        if extra:
            payload.update(extra)
        await self._stream.send_event("run_error", payload)

    async def run_complete(self, summary: Mapping[str, Any] | None = None) -> None:
        self._check_latch()
        payload: dict[str, Any] = {}
        if summary is not None:
            payload["summary"] = _need_map(summary, "summary")
        await self._stream.send_event("run_complete", payload)
