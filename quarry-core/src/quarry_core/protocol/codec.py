"""CBOR codec and 4-byte big-endian length framing. The only module that imports ``cbor2``.

A frame is ``N`` (unsigned 32-bit big-endian) followed by ``N`` bytes holding one CBOR map with text keys.
Tags are refused, encoders write definite lengths, decoders accept indefinite ones.
"""

from __future__ import annotations

import asyncio
import io
import os
import struct
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, Protocol

import cbor2

from quarry_core.errors import FrameDecodeError
from quarry_core.protocol.constants import LENGTH_PREFIX_SIZE, MAX_PAYLOAD_SIZE

__all__ = [
    "EndOfStream",
    "FrameReader",
    "TruncatedFrame",
    "check_frame_map",
    "decode_body",
    "decode_payload",
    "encode_event_frame",
    "encode_frame",
    "encode_map",
    "event_size",
    "json_map_decoder",
    "read_frame_sync",
    "speedups",
]

_PREFIX = struct.Struct(">I")


class _HasToWire(Protocol):
    def to_wire(self) -> dict[str, Any]: ...


class _Sized(_HasToWire, Protocol):
    @property
    def wire_size(self) -> int | None: ...


def _refuse_tag(decoder: Any, tag: Any, *args: Any) -> Any:
    raise FrameDecodeError(f"CBOR tags are not allowed (tag {getattr(tag, 'tag', tag)})")


class _RefuseAllTags(Mapping[int, Any]):
    """Overrides every semantic tag cbor2 would otherwise decode (datetimes, decimals, sets...) with a refusal."""

    def __getitem__(self, tag: int) -> Any:
        def refuse(decoder: Any, *args: Any) -> Any:
            raise FrameDecodeError(f"CBOR tags are not allowed (tag {tag})")

        return refuse

    def __contains__(self, tag: object) -> bool:
        return True

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


_NO_TAGS = _RefuseAllTags()


def encode_map(obj: Mapping[str, Any]) -> bytes:
    """CBOR-encode a map (definite lengths): ``cbor2.dumps(obj)``'s bytes, written by quarry-speedups' compiled
    encoder when it is installed and ``obj`` is made of exact JSON-model types only."""
    if _encode_json is not None:
        body: bytes | None = _encode_json(obj)
        if body is not None:
            return body
    try:
        return cbor2.dumps(obj)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot encode frame: {exc}") from exc


def _too_large(size: int) -> ValueError:
    return ValueError(f"frame payload of {size} bytes exceeds the limit of {MAX_PAYLOAD_SIZE}")


def encode_frame(frame: _HasToWire | Mapping[str, Any]) -> bytes:
    """Length prefix + CBOR of ``frame.to_wire()`` (or of a plain map). Raises ``ValueError`` when too large."""
    obj = frame if type(frame) is dict or isinstance(frame, Mapping) else frame.to_wire()
    if _encode_json_frame is not None:
        data: bytes | None = _encode_json_frame(obj)
        if data is not None:  # prefix and body in one allocation; a map's body is never empty
            if len(data) - LENGTH_PREFIX_SIZE > MAX_PAYLOAD_SIZE:
                raise _too_large(len(data) - LENGTH_PREFIX_SIZE)
            return data
    body = encode_map(obj)
    if len(body) == 0 or len(body) > MAX_PAYLOAD_SIZE:
        raise _too_large(len(body))
    return _PREFIX.pack(len(body)) + body


def encode_event_frame(
    contract_version: str,
    event_id: str,
    run_id: str,
    seq: int,
    event_type: str,
    ts: str,
    payload: dict[str, Any],
    attempt: int,
    lineage: dict[str, Any],
) -> bytes:
    """:func:`encode_frame` of the event envelope ``{"contract_version", "event_id", "run_id", "seq", "type",
    "ts", "payload", "attempt", **lineage}`` (in that order): quarry-speedups writes it without building the map
    when installed. Raises ``ValueError`` as :func:`encode_frame` does."""
    if _encode_event_frame is not None:
        data = _encode_event_frame(contract_version, event_id, run_id, seq, event_type, ts, payload, attempt, lineage)
        if data is not None:
            if len(data) - LENGTH_PREFIX_SIZE > MAX_PAYLOAD_SIZE:
                raise _too_large(len(data) - LENGTH_PREFIX_SIZE)
            return data
    d = {
        "contract_version": contract_version,
        "event_id": event_id,
        "run_id": run_id,
        "seq": seq,
        "type": event_type,
        "ts": ts,
        "payload": payload,
        "attempt": attempt,
    }
    if lineage:
        d.update(lineage)
    return encode_frame(d)


def event_size(event: _Sized) -> int:
    """An event's size for policy accounting: the length of its CBOR encoding (CONTRACT_POLICY).

    An event decoded from a frame carries its frame body's length (:attr:`Event.wire_size`), which is that
    length, so nothing is encoded again; an event built in memory is encoded to learn it.
    """
    size = event.wire_size
    return size if size is not None else len(encode_map(event.to_wire()))


def decode_payload(body: bytes) -> dict[str, Any]:
    """Decode one frame body into a text-keyed map; anything else raises :class:`FrameDecodeError`."""
    return check_frame_map(decode_body(body))


def decode_body(body: bytes) -> Any:
    """Decode one frame body without looking at what it holds: ``FrameDecodeError`` for an empty body,
    undecodable CBOR or any tag. :func:`check_frame_map` does the rest of :func:`decode_payload`; the ingestion
    loop skips it for an event frame whose keys are all envelope keys (then they are text)."""
    if not body:
        raise FrameDecodeError("empty frame (length 0)")
    # A decoder over a seekable stream leaves it right after the data item, so bytes behind it are seen
    # (``cbor2.loads`` ignores them; this costs about 0.8 µs more than it). The refusing hooks cost about 0.2 µs.
    fp = io.BytesIO(body)
    try:
        obj = cbor2.CBORDecoder(fp, tag_hook=_refuse_tag, semantic_decoders=_NO_TAGS).decode()
    except FrameDecodeError:
        raise
    except Exception as exc:  # cbor2 raises several types for malformed input
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, FrameDecodeError):
            raise cause from None
        raise FrameDecodeError(f"undecodable CBOR: {type(exc).__name__}: {exc}") from None
    end = fp.tell()
    if end != len(body):
        raise FrameDecodeError(f"undecodable CBOR: {len(body) - end} bytes after the data item (a frame holds one)")
    return obj


def speedups(env: Mapping[str, str] | None = None) -> Any:
    """The optional ``quarry_speedups`` module (compiled accelerators of the hot path), or ``None`` when it is
    not installed or ``QUARRY_SPEEDUPS=0`` (in ``env``, default ``os.environ``). Every caller gives the same
    outcome without it."""
    if (os.environ if env is None else env).get("QUARRY_SPEEDUPS", "").strip() == "0":
        return None
    try:
        import quarry_speedups
    except ImportError:
        return None
    return quarry_speedups


_speedups_module = speedups()
#: quarry-speedups' compiled encoders when installed (``None``: cbor2 encodes every frame)
_encode_json: Callable[[Any], bytes | None] | None = getattr(_speedups_module, "encode_json_map", None)
_encode_json_frame: Callable[[Any], bytes | None] | None = getattr(_speedups_module, "encode_json_frame", None)
_encode_event_frame: Callable[..., bytes | None] | None = getattr(_speedups_module, "encode_event_frame", None)


def json_map_decoder(env: Mapping[str, str] | None = None) -> Callable[[bytes], dict[str, Any] | None] | None:
    """The compiled decoder of the optional ``quarry-speedups`` distribution, or ``None`` (see :func:`speedups`).

    It returns the map ``cbor2.loads(body)`` would for a body inside the JSON data model (text keys, 64-bit
    integers, finite floats, no tags, byte strings or indefinite lengths, nothing after the map): then every key
    is text and every value passes :func:`~quarry_core.protocol.values.json_value_error`. For anything else it
    returns ``None`` and the caller decodes with :func:`decode_body`, so each outcome stays the same.
    """
    module = speedups(env)
    return None if module is None else module.decode_json_map  # type: ignore[no-any-return]


def check_frame_map(obj: Any) -> dict[str, Any]:
    """``obj`` (a decoded frame body) if it is a map with text keys, else :class:`FrameDecodeError`."""
    if not isinstance(obj, dict):
        raise FrameDecodeError(f"frame is not a map (got {type(obj).__name__})")
    for key in obj:
        if not isinstance(key, str):
            raise FrameDecodeError(f"frame map has a non-text key ({type(key).__name__})")
    return obj


class EndOfStream(Exception):
    """Clean end of the stream at a frame boundary."""


class TruncatedFrame(FrameDecodeError):
    """End of the stream inside a length prefix or a payload."""


class FrameReader:
    """Reads length-prefixed frames from an ``asyncio.StreamReader``; counts frames and bytes.

    Bytes are taken from the stream in chunks of up to :attr:`CHUNK` (whatever the pipe has delivered) and
    frames are cut from that buffer without a coroutine switch per frame; a frame larger than the buffer is
    read to its end with one ``readexactly``. ``frames`` and ``bytes`` count the frames returned so far.
    """

    #: bytes asked from the stream at a time (the stream returns what it has, up to this)
    CHUNK = 256 * 1024

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buf = b""
        self._pos = 0
        self.frames = 0
        self.bytes = 0

    async def read_body(self) -> bytes:
        """The next frame's body. ``EndOfStream`` at a boundary; ``TruncatedFrame`` or ``FrameDecodeError``."""
        body = self.buffered_body()
        if body is not None:
            return body
        return await self._read_body_slow()

    def buffered_body(self) -> bytes | None:
        """The next frame's body if the whole frame has arrived already, else ``None`` (nothing is read, nothing
        waits, nothing is consumed). A malformed length prefix also gives ``None``: :meth:`read_body` reports it.
        """
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= LENGTH_PREFIX_SIZE:
            (n,) = _PREFIX.unpack_from(buf, pos)
            end = pos + LENGTH_PREFIX_SIZE + n
            if 0 < n <= MAX_PAYLOAD_SIZE and end <= len(buf):
                self._pos = end
                self.frames += 1
                self.bytes += LENGTH_PREFIX_SIZE + n
                return buf[pos + LENGTH_PREFIX_SIZE : end]
        return None

    def buffered(self) -> tuple[bytes, int]:
        """The read buffer and where its next frame starts, for a caller that reads whole frames in place and
        then calls :meth:`advance`."""
        return self._buf, self._pos

    def advance(self, end: int, frames: int) -> None:
        """Count ``frames`` frames read in place, from the next frame up to ``end`` in :meth:`buffered`'s buffer,
        as read."""
        self.bytes += end - self._pos
        self.frames += frames
        self._pos = end

    def buffered_event(self, event_at: Callable[[bytes, int], Any]) -> Any | None:
        """The next frame as ``event_at(buffer, position)`` reads it in place, without cutting its body out,
        or ``None`` when it does not take that frame (nothing is consumed: :meth:`buffered_body` then returns
        its body). ``event_at`` is quarry-speedups' ``EventDecoder.event_at``: it takes a frame only if the
        whole frame has arrived with a valid length, and returns an event whose ``wire_size`` is the body's
        length. Counted as :meth:`buffered_body` counts."""
        event = event_at(self._buf, self._pos)
        if event is not None:
            n = LENGTH_PREFIX_SIZE + event.wire_size
            self._pos += n
            self.frames += 1
            self.bytes += n
        return event

    async def _fill(self, want: int) -> int:
        """Read until ``want`` bytes are buffered or the stream ends; the bytes buffered."""
        have = len(self._buf) - self._pos
        while have < want:
            chunk = await self._reader.read(self.CHUNK)
            if not chunk:
                break
            self._buf = self._buf[self._pos :] + chunk if have else chunk
            self._pos = 0
            have += len(chunk)
        return have

    async def _read_body_slow(self) -> bytes:
        have = await self._fill(LENGTH_PREFIX_SIZE)
        if have < LENGTH_PREFIX_SIZE:
            if not have:
                raise EndOfStream
            raise TruncatedFrame(
                f"truncated frame: stream ended inside the length prefix ({have} of 4 bytes)"
            ) from None
        pos = self._pos
        (n,) = _PREFIX.unpack_from(self._buf, pos)
        if n > MAX_PAYLOAD_SIZE:
            raise FrameDecodeError(f"frame length {n} exceeds the limit of {MAX_PAYLOAD_SIZE}")
        pos += LENGTH_PREFIX_SIZE
        self._pos = pos
        if n == 0:
            self.bytes += LENGTH_PREFIX_SIZE
            raise FrameDecodeError("empty frame (length 0)")
        have -= LENGTH_PREFIX_SIZE
        if have >= n:
            body = self._buf[pos : pos + n]
            self._pos = pos + n
        else:
            if n - have <= self.CHUNK:
                have = await self._fill(n)
            if have >= n:
                pos = self._pos
                body = self._buf[pos : pos + n]
                self._pos = pos + n
            else:  # a large frame: its rest in one read
                head = self._buf[self._pos :]
                self._buf, self._pos = b"", 0
                try:
                    rest = await self._reader.readexactly(n - len(head))
                except asyncio.IncompleteReadError as exc:
                    raise TruncatedFrame(
                        f"truncated frame: stream ended inside a payload ({len(head) + len(exc.partial)} of {n} bytes)"
                    ) from None
                body = head + rest
        if len(body) < n:  # pragma: no cover - guarded above
            raise TruncatedFrame(f"truncated frame: stream ended inside a payload ({len(body)} of {n} bytes)")
        self.frames += 1
        self.bytes += LENGTH_PREFIX_SIZE + n
        return body

    async def read(self) -> dict[str, Any]:
        return decode_payload(await self.read_body())


def read_frame_sync(stream: BinaryIO) -> dict[str, Any] | None:
    """Blocking variant for files and pipes: the next decoded map, ``None`` at a clean end."""
    prefix = stream.read(LENGTH_PREFIX_SIZE)
    if not prefix:
        return None
    if len(prefix) < LENGTH_PREFIX_SIZE:
        raise TruncatedFrame("truncated frame: stream ended inside the length prefix")
    (n,) = _PREFIX.unpack(prefix)
    if n > MAX_PAYLOAD_SIZE:
        raise FrameDecodeError(f"frame length {n} exceeds the limit of {MAX_PAYLOAD_SIZE}")
    body = stream.read(n)
    if len(body) < n:
        raise TruncatedFrame(f"truncated frame: stream ended inside a payload ({len(body)} of {n} bytes)")
    return decode_payload(body)
