"""The ingestion loop: read frames in arrival order, enforce the contract, route through the policy.

Per frame, the first failure decides (CONTRACT_RUN, ingestion order): decode → dispatch on ``type`` → version →
envelope → run identity → ``seq`` → payload → no terminal yet → side effects (artifact commit, enqueue,
rotate_proxy) → ``await policy.ingest_event``. Awaiting the policy before the next read is the only
backpressure; nothing is buffered here.

Group ingestion (CONTRACT_POLICY §1): when the policy has ``ingest_events``, the event frames that have already
arrived whole behind the one the loop waited for (:meth:`FrameReader.buffered_body`, at most
:data:`MAX_GROUP` of them) are checked one by one, exactly as above, and handed to the policy in one call. A
chunk or another frame kind, a terminal event or a failed check ends the group; the events checked before a
failure are ingested first, and a policy failure of the group wins over the later failure, as it would have
one frame at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, BinaryIO, Protocol

import attrs
from loguru import logger

from quarry_core.errors import FrameDecodeError, StreamError, VersionMismatchError
from quarry_core.interfaces import IngestionPolicy
from quarry_core.protocol.codec import (
    EndOfStream,
    FrameReader,
    TruncatedFrame,
    check_frame_map,
    decode_body,
    speedups,
)
from quarry_core.protocol.constants import MAX_PAYLOAD_SIZE
from quarry_core.protocol.frames import (
    ArtifactChunk,
    Event,
    ExecutorFrame,
    FileWrite,
    FileWriteChunk,
    ProxyUpdate,
    RunResult,
    check_event_payload,
    fast_event,
    fast_event_rules,
    parse_executor_frame,
)
from quarry_core.runtime.artifacts import ArtifactManager
from quarry_core.runtime.metrics import Collector
from quarry_core.runtime.sidecars import SidecarWriter

__all__ = ["MAX_GROUP", "IngestResult", "Ingestor", "RunIdentity", "decode_frame", "event_decoder"]

#: At most this many events in one ``ingest_events`` call (the reader's buffer bounds a group's bytes).
MAX_GROUP = 1024

#: Event types the runtime acts on itself before the policy sees them.
_ANSWERED = frozenset({"enqueue", "rotate_proxy"})


class CompiledEventDecoder(Protocol):
    """What :func:`event_decoder` returns (``quarry_speedups.EventDecoder``)."""

    def __call__(self, body: bytes) -> Any: ...

    def event_at(self, buf: bytes, pos: int) -> Event | None: ...

    def take_items(
        self,
        buf: bytes,
        pos: int,
        out: list[Event],
        limit: int,
        last_seq: int,
        run_id: str,
        attempt: int,
        lineage: tuple[Any, ...] | None,
    ) -> int: ...


def event_decoder(env: Mapping[str, str] | None = None) -> CompiledEventDecoder | None:
    """quarry-speedups' compiled event decoder bound to :class:`Event` and :func:`fast_event_rules`, or ``None``
    when it is not installed or ``QUARRY_SPEEDUPS=0``: called with a frame body, it returns the :class:`Event`
    :func:`fast_event` would for the common event frame, the decoded map for any other body inside the JSON
    data model, ``None`` for the rest; ``event_at(buffer, position)`` reads the common event frame whose length
    prefix starts there in place (``None`` for any other frame, or none whole), and ``take_items`` reads on from
    there while the frames are the run's common items."""
    module = speedups(env)
    return None if module is None else module.EventDecoder(Event, max_body=MAX_PAYLOAD_SIZE, **fast_event_rules())


#: the compiled event decoder when installed (``None``: cbor2 decodes every frame)
_decode_event = event_decoder()


def decode_frame(body: bytes) -> ExecutorFrame:
    """One frame body as the loop reads it: ``parse_executor_frame(decode_payload(body), check_payload=False,
    wire_size=len(body))``, with the same outcome for every input.

    The common event frame, with the envelope keys and nothing else, takes :func:`fast_event` and skips the
    separate pass over the keys (they are the envelope's, hence text) and the layers of the general path. With
    quarry-speedups installed, its compiled decoder decodes every body inside the JSON data model and builds
    the common event frame's :class:`Event` itself (the same rules as :func:`fast_event`); an item event's
    payload is then known to pass :func:`validate_payload` (:func:`check_event_payload` skips it).
    """
    obj: Any = _decode_event(body) if _decode_event is not None else None
    if obj is None:
        obj = decode_body(body)
        if type(obj) is dict:
            event = fast_event(obj, len(body))
            if event is not None:
                return event
    elif type(obj) is not dict:
        return obj  # type: ignore[no-any-return]  # the common event frame's Event
    return parse_executor_frame(check_frame_map(obj), check_payload=False, wire_size=len(body))


@attrs.frozen
class RunIdentity:
    run_id: str
    attempt: int
    job_id: str | None = None
    parent_run_id: str | None = None
    spawned_by_run_id: str | None = None
    depth: int | None = None


@attrs.define
class IngestResult:
    """What ingestion saw; the classifier reads it."""

    terminal: Event | None = None
    run_result: RunResult | None = None
    last_seq: int = 0
    stream_error: str | None = None
    version_error: VersionMismatchError | None = None
    policy_error: str | None = None
    last_error: str | None = None

    @property
    def fatal(self) -> bool:
        return bool(self.stream_error or self.version_error or self.policy_error)


class Ingestor:
    """Reads one run's frames and drives its policy."""

    def __init__(
        self,
        *,
        identity: RunIdentity,
        policy: IngestionPolicy,
        metrics: Collector,
        sidecars: SidecarWriter,
        send_control: Callable[[Any], Awaitable[None]],
        on_enqueue: Callable[[Event], Awaitable[None]] | None = None,
        on_rotate_proxy: Callable[[Event], Awaitable[ProxyUpdate]] | None = None,
        stop_on_run_result: bool = False,
        capture: BinaryIO | None = None,
    ) -> None:
        self.identity = identity
        self.policy = policy
        self.metrics = metrics
        self.sidecars = sidecars
        self.artifacts = ArtifactManager()
        self._send_control = send_control
        self._on_enqueue = on_enqueue
        self._on_rotate_proxy = on_rotate_proxy
        self.result = IngestResult()
        self._warned_no_pool = False
        self.stopping = False  # set when the runtime stops the executor itself: read errors are then expected
        # warm executors keep their stdout open across runs: one run's stream ends with its run_result
        self.stop_on_run_result = stop_on_run_result
        self.capture = capture  # --capture-frames: every frame read is appended here, length prefix included
        # the compiled decoder's in-place reading of buffered event frames (not with a capture: it needs bodies)
        self._compiled = _decode_event if capture is None else None
        self._ingest_group: Callable[[list[Event]], Awaitable[None]] | None = getattr(policy, "ingest_events", None)
        # the lineage an event of this run carries in full (``None``: none at all), for _check_event's common case
        lineage = (identity.job_id, identity.parent_run_id, identity.spawned_by_run_id, identity.depth)
        self._lineage = None if lineage == (None, None, None, None) else lineage

    async def run(self, reader: FrameReader) -> IngestResult:
        """Ingest until a clean end of stream or the first fatal error."""
        try:
            return await self._loop(reader)
        finally:  # once, not per frame (the runtime also sets it from the run's own count at the end)
            self.metrics.set("ipc_frames_received_total", reader.frames)

    async def _loop(self, reader: FrameReader) -> IngestResult:
        res = self.result
        grouped = self._ingest_group is not None
        while True:
            try:
                body = await reader.read_body()
            except EndOfStream:
                break
            except FrameDecodeError as exc:
                counted = not isinstance(exc, TruncatedFrame) and "exceeds the limit" not in str(exc)
                if counted:
                    self.metrics.inc("ipc_decode_errors_total")
                self._framing_failure(str(exc))
                break
            except (OSError, ConnectionError) as exc:
                self._framing_failure(f"pipe read error: {exc}")
                break
            try:
                frame = self._frame(body)
                if isinstance(frame, Event):  # most frames: one coroutine less
                    if grouped:
                        pending = await self._on_events(frame, reader)
                        if pending is not None:
                            await self._dispatch(pending)
                    else:
                        await self._on_event(frame)
                else:
                    await self._dispatch(frame)
            except FrameDecodeError as exc:
                self.metrics.inc("ipc_decode_errors_total")
                self._framing_failure(str(exc))
                break
            except VersionMismatchError as exc:
                res.version_error = exc
                res.last_error = str(exc)
                break
            except StreamError as exc:
                res.stream_error = str(exc)
                res.last_error = str(exc)
                break
            if res.policy_error:
                break
            if self.stop_on_run_result and res.run_result is not None:
                break
        return res

    def _frame(self, body: bytes) -> ExecutorFrame:
        """Capture, decode and parse one frame body (``FrameDecodeError``, ``VersionMismatchError``,
        ``StreamError``)."""
        if self.capture is not None:
            self._capture(body)
        return decode_frame(body)

    async def _on_events(self, first: Event, reader: FrameReader) -> ExecutorFrame | None:
        """Check ``first`` and the event frames already buffered behind it, then ingest them as one group.

        Returns the non-event frame that ended the group, for the caller to dispatch, or ``None``. A failure
        while collecting is raised after the events checked before it were ingested, unless their ingestion
        failed (then the run ends with ``policy_failure`` and the later frame counts as never read).
        """
        self._check_event(first)
        if first.type in _ANSWERED:
            await self._side_effect(first)
        events = [first]
        pending: ExecutorFrame | None = None
        failure: Exception | None = None
        if not first.is_terminal:
            compiled = self._compiled
            res, ident = self.result, self.identity
            try:
                while len(events) < MAX_GROUP:
                    frame = None
                    if compiled is not None:
                        if res.terminal is None:
                            # common items, read in place and checked as _check_event's one condition checks them
                            buf, pos = reader.buffered()
                            taken = len(events)
                            end = compiled.take_items(
                                buf, pos, events, MAX_GROUP, res.last_seq, ident.run_id, ident.attempt, self._lineage
                            )
                            if end != pos:
                                reader.advance(end, len(events) - taken)
                                res.last_seq = events[-1].seq
                                if len(events) >= MAX_GROUP:
                                    break
                        # any other event frame read in place
                        frame = reader.buffered_event(compiled.event_at)
                    if frame is None:  # any other frame (or none) cut out and decoded
                        body = reader.buffered_body()
                        if body is None:
                            break
                        frame = self._frame(body)
                        if not isinstance(frame, Event):
                            pending = frame
                            break
                    if self._check_event(frame):  # the common item: nothing else to do for it
                        events.append(frame)
                        continue
                    if frame.type in _ANSWERED:
                        await self._side_effect(frame)
                    events.append(frame)
                    if frame.is_terminal:
                        break
            except (FrameDecodeError, VersionMismatchError, StreamError) as exc:
                failure = exc
        await self._ingest(events)
        if self.result.policy_error:
            return None
        if failure is not None:
            raise failure
        return pending

    def _capture(self, body: bytes) -> None:
        assert self.capture is not None
        try:
            self.capture.write(len(body).to_bytes(4, "big") + body)
            self.capture.flush()
        except OSError as exc:
            logger.warning("Warning: frame capture stopped: {}", exc)
            capture, self.capture = self.capture, None
            with contextlib.suppress(OSError):
                capture.close()

    def _framing_failure(self, message: str) -> None:
        res = self.result
        res.last_error = message
        if res.terminal is not None or self.stopping:
            logger.warning("Warning: executor stream ended irregularly after the terminal event: {}", message)
            return
        res.stream_error = message

    async def _dispatch(self, frame: ExecutorFrame) -> None:
        if isinstance(frame, Event):
            await self._on_event(frame)
        elif isinstance(frame, ArtifactChunk):
            await self._on_chunk(frame)
        elif isinstance(frame, FileWrite):
            await self.sidecars.on_file_write(frame, terminated=self.result.terminal is not None)
        elif isinstance(frame, FileWriteChunk):
            await self.sidecars.on_file_write_chunk(frame, terminated=self.result.terminal is not None)
        else:
            self._on_run_result(frame)

    def _check_identity(self, event: Event) -> None:
        ident = self.identity
        if (
            event.run_id == ident.run_id
            and event.attempt == ident.attempt
            and event.job_id is None
            and event.parent_run_id is None
            and event.spawned_by_run_id is None
            and event.depth is None
        ):
            return  # the common case: no lineage keys to compare
        if event.run_id != ident.run_id:
            raise StreamError(f"invalid envelope: run_id: expected {ident.run_id!r}, got {event.run_id!r}")
        if event.attempt != ident.attempt:
            raise StreamError(f"invalid envelope: attempt: expected {ident.attempt}, got {event.attempt}")
        for key in ("job_id", "parent_run_id", "spawned_by_run_id", "depth"):
            got = getattr(event, key)
            if got is not None and got != getattr(ident, key):
                raise StreamError(f"invalid envelope: {key}: expected {getattr(ident, key)!r}, got {got!r}")

    async def _on_event(self, event: Event) -> None:
        self._check_event(event)
        if event.type in _ANSWERED:
            await self._side_effect(event)
        try:
            await self.policy.ingest_event(event)
        except Exception as exc:
            self._policy_failed(exc)
            return
        if event.is_terminal:
            self.result.terminal = event

    def _check_event(self, event: Event) -> bool:
        """Every check of one event in contract order; an ``artifact`` record also closes its artifact.

        ``True`` for the common item, checked in one condition: a payload known valid (an item, so neither
        terminal, artifact nor answered by the runtime), the next ``seq``, this run's identity and lineage, no
        terminal yet."""
        res = self.result
        lineage = self._lineage
        if (
            event._payload_valid
            and event.seq == res.last_seq + 1
            and event.run_id == self.identity.run_id
            and event.attempt == self.identity.attempt
            and res.terminal is None
            and (
                event.job_id is None
                and event.parent_run_id is None
                and event.spawned_by_run_id is None
                and event.depth is None
                if lineage is None
                else (event.job_id, event.parent_run_id, event.spawned_by_run_id, event.depth) == lineage
            )
        ):
            res.last_seq = event.seq
            return True
        self._check_identity(event)
        expected = res.last_seq + 1
        if event.seq != expected:
            raise StreamError(f"sequence violation: expected {expected}, got {event.seq}")
        check_event_payload(event)
        if res.terminal is not None:
            raise StreamError(f"protocol violation: {event.type} event after terminal (seq {event.seq})")
        res.last_seq = event.seq
        if event.type == "artifact":
            self.artifacts.on_commit(event)
        return False

    async def _side_effect(self, event: Event) -> None:
        """What the runtime does for an ``enqueue`` or ``rotate_proxy`` event before its policy sees it."""
        if event.type == "enqueue":
            if self._on_enqueue is not None:
                await self._on_enqueue(event)
        else:
            await self._answer_rotation(event)

    async def _ingest(self, events: list[Event]) -> None:
        assert self._ingest_group is not None
        try:
            await self._ingest_group(events)
        except Exception as exc:
            self._policy_failed(exc)
            return
        last = events[-1]  # a terminal event always ends its group
        if last.is_terminal:
            self.result.terminal = last

    def _policy_failed(self, exc: Exception) -> None:
        res = self.result
        res.policy_error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
        res.last_error = res.policy_error

    async def _answer_rotation(self, event: Event) -> None:
        if self._on_rotate_proxy is not None:
            reply = await self._on_rotate_proxy(event)
        else:
            if not self._warned_no_pool:
                self._warned_no_pool = True
                logger.warning("Warning: rotate_proxy requested but no proxy pool is configured")
            reply = ProxyUpdate(run_id=self.identity.run_id, seq=event.seq, ok=False, error="no proxy pool configured")
        try:
            await self._send_control(reply)
        except Exception as exc:
            logger.debug("could not deliver proxy_update: {}", exc)

    async def _on_chunk(self, chunk: ArtifactChunk) -> None:
        res = self.result
        if res.terminal is not None:
            raise StreamError(f"protocol violation: artifact_chunk after terminal (artifact {chunk.artifact_id})")
        self.artifacts.on_chunk(chunk)
        try:
            await self.policy.ingest_chunk(chunk)
        except Exception as exc:
            self._policy_failed(exc)

    def _on_run_result(self, result: RunResult) -> None:
        res = self.result
        if result.run_id != self.identity.run_id:
            raise StreamError(f"invalid run_result: run_id: expected {self.identity.run_id!r}, got {result.run_id!r}")
        if res.run_result is not None:
            logger.warning("Warning: duplicate run_result ignored")
            return
        res.run_result = result
