"""Frames, validation and the CBOR codec: round trips of every frame kind, and arbitrary bytes to the
decoder give only classified errors."""

from __future__ import annotations

import asyncio
import io
import struct
import uuid
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quarry_core.errors import FrameDecodeError, StreamError, VersionMismatchError
from quarry_core.protocol import (
    CONTRACT_VERSION,
    EVENT_TYPES,
    MAX_CHUNK_SIZE,
    MAX_PAYLOAD_SIZE,
    ArtifactChunk,
    Cancel,
    EndOfStream,
    Event,
    FileWrite,
    FileWriteAck,
    FileWriteChunk,
    FrameReader,
    ProxyUpdate,
    RunRequest,
    RunRequestError,
    RunRequestFrame,
    RunResult,
    Shutdown,
    TruncatedFrame,
    check_contract_version,
    decode_payload,
    encode_frame,
    parse_control_frame,
    parse_executor_frame,
    read_frame_sync,
)

text = st.text(min_size=1, max_size=20)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12
)
json_maps = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
ts = st.just("2026-11-25T17:49:03.120Z")

payloads = {
    "item": st.fixed_dictionaries({"item_type": text, "data": json_maps}),
    "artifact": st.fixed_dictionaries(
        {
            "artifact_id": st.uuids().map(str),
            "name": text,
            "content_type": text,
            "size_bytes": st.integers(0, 2**30),
        }
    ),
    "checkpoint": st.fixed_dictionaries({"checkpoint_id": text}, optional={"note": st.text(max_size=10)}),
    "enqueue": st.fixed_dictionaries(
        {"target": text, "params": json_maps}, optional={"source": text, "category": text}
    ),
    "rotate_proxy": st.fixed_dictionaries({}, optional={"reason": st.text(max_size=10)}),
    "log": st.fixed_dictionaries(
        {"level": st.sampled_from(["debug", "info", "warn", "error"]), "message": st.text(max_size=20)},
        optional={"fields": json_maps},
    ),
    "run_error": st.fixed_dictionaries(
        {"error_type": text, "message": st.text(max_size=20)}, optional={"stack": st.text(max_size=30)}
    ),
    "run_complete": st.fixed_dictionaries({}, optional={"summary": json_maps}),
}


@st.composite
def events(draw: st.DrawFn) -> Event:
    etype = draw(st.sampled_from(sorted(EVENT_TYPES)))
    attempt = draw(st.integers(1, 5))
    return Event(
        event_id=str(draw(st.uuids())),
        run_id=draw(text),
        seq=draw(st.integers(1, 2**40)),
        type=etype,
        ts=draw(ts),
        payload=draw(payloads[etype]),
        attempt=attempt,
        job_id=draw(st.none() | text),
        parent_run_id=draw(text) if attempt > 1 else None,
        spawned_by_run_id=draw(st.none() | text),
        depth=draw(st.none() | st.integers(1, 10)),
    )


executor_frames = st.one_of(
    events(),
    st.builds(
        ArtifactChunk,
        artifact_id=st.uuids().map(str),
        seq=st.integers(1, 100),
        is_last=st.booleans(),
        data=st.binary(max_size=64),
    ),
    st.builds(FileWrite, write_id=st.integers(1, 1000), filename=text, content_type=text, data=st.binary(max_size=64)),
    st.builds(
        FileWriteChunk,
        write_id=st.integers(1, 1000),
        filename=text,
        content_type=text,
        seq=st.integers(1, 10),
        is_last=st.booleans(),
        data=st.binary(max_size=64),
    ),
    st.builds(
        RunResult,
        run_id=text,
        status=st.sampled_from(["completed", "error", "crash"]),
        message=st.none() | st.text(max_size=10),
        error_type=st.none() | text,
        stack=st.none() | st.text(max_size=10),
    ),
)

control_frames = st.one_of(
    st.builds(
        FileWriteAck,
        write_id=st.integers(1, 1000),
        ok=st.booleans(),
        error=st.none() | text,
        error_kind=st.none() | text,
        key=st.none() | text,
    ),
    st.builds(
        ProxyUpdate,
        run_id=text,
        seq=st.integers(1, 100),
        ok=st.booleans(),
        changed=st.booleans(),
        proxy=st.none() | st.just({"protocol": "http", "host": "p", "port": 8080}),
        error=st.none() | text,
    ),
    st.builds(
        Cancel, run_id=text, reason=st.sampled_from(["signal", "timeout", "shutdown"]), grace_ms=st.integers(0, 10**6)
    ),
    st.builds(
        RunRequestFrame,
        request=st.builds(RunRequest, run_id=text, attempt=st.just(1), script=st.just("/abs/s.py"), job=json_maps),
    ),
    st.just(Shutdown()),
)


@given(executor_frames)
def test_executor_frames_round_trip_through_cbor_framing(frame: object) -> None:
    wire = encode_frame(frame)  # type: ignore[arg-type]
    (n,) = struct.unpack(">I", wire[:4])
    assert n == len(wire) - 4
    assert parse_executor_frame(decode_payload(wire[4:])) == frame


@given(control_frames)
def test_control_frames_round_trip(frame: object) -> None:
    wire = encode_frame(frame)  # type: ignore[arg-type]
    assert parse_control_frame(decode_payload(wire[4:])) == frame


@given(st.binary(max_size=256))
@settings(max_examples=500)
def test_arbitrary_bytes_give_only_classified_errors(data: bytes) -> None:
    stream = io.BytesIO(data)
    try:
        while (m := read_frame_sync(stream)) is not None:
            try:
                parse_executor_frame(m)
            except (StreamError, VersionMismatchError):
                pass
    except FrameDecodeError:
        pass


@given(st.binary(min_size=1, max_size=128))
@settings(max_examples=500)
def test_arbitrary_frame_bodies_decode_or_fail_classified(body: bytes) -> None:
    try:
        decoded = decode_payload(body)
    except FrameDecodeError:
        return
    assert isinstance(decoded, dict)
    assert all(isinstance(k, str) for k in decoded)


def test_tags_and_non_maps_are_refused() -> None:
    import datetime

    with pytest.raises(FrameDecodeError, match="tags are not allowed"):
        decode_payload(cbor2.dumps({"ts": datetime.datetime.now(datetime.UTC)}))
    with pytest.raises(FrameDecodeError, match="not a map"):
        decode_payload(cbor2.dumps([1, 2]))
    with pytest.raises(FrameDecodeError, match="non-text key"):
        decode_payload(cbor2.dumps({1: 2}))
    with pytest.raises(FrameDecodeError, match="empty frame"):
        decode_payload(b"")
    # indefinite-length maps are accepted
    assert decode_payload(b"\xbf\x61a\x01\xff") == {"a": 1}


@pytest.mark.parametrize("extra", [b"\x00", b"\xa0", b"\xff", b"\xa1\x61a\x01", b"x" * 5000])
def test_bytes_after_the_data_item_are_refused(extra: bytes) -> None:
    """A frame holds exactly one CBOR data item (CONTRACT_IPC §2); cbor2.loads alone would ignore the rest."""
    body = cbor2.dumps({"a": 1, "b": "é" * 3000})
    assert decode_payload(body) == cbor2.loads(body + extra)
    with pytest.raises(FrameDecodeError, match=rf"{len(extra)} bytes after the data item"):
        decode_payload(body + extra)


@pytest.mark.parametrize(
    ("runtime_ok", "version"),
    [
        (True, "1.0.0"),
        (True, "1.0.7"),
        (True, "1.0.0-rc.1"),
        (False, "1.1.0"),
        (False, "2.0.0"),
        (False, "0.13.4"),
        (False, "1.0"),
        (False, ""),
        (False, 1),
    ],
)
def test_contract_version_rule(runtime_ok: bool, version: object) -> None:
    assert CONTRACT_VERSION == "1.0.0"
    if runtime_ok:
        check_contract_version(version)
    else:
        with pytest.raises(VersionMismatchError, match="contract version mismatch"):
            check_contract_version(version)


def _event(**over: object) -> dict[str, object]:
    d: dict[str, object] = {
        "contract_version": "1.0.0",
        "event_id": "e1",
        "run_id": "r",
        "seq": 1,
        "type": "item",
        "ts": "2026-11-25T17:49:03.120+01:00",
        "payload": {"item_type": "p", "data": {}},
        "attempt": 1,
    }
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


def test_event_validation_messages() -> None:
    e = Event.from_wire(_event())
    assert e.ts == "2026-11-25T16:49:03.120Z"  # normalised to UTC
    with pytest.raises(VersionMismatchError):
        Event.from_wire(_event(contract_version="2.0.0", seq="bad"))  # version is checked first
    with pytest.raises(StreamError, match="invalid envelope: seq: expected unsigned integer"):
        Event.from_wire(_event(seq="1"))
    with pytest.raises(StreamError, match="invalid envelope: ts"):
        Event.from_wire(_event(ts="2026-11-25 17:49:03"))
    with pytest.raises(StreamError, match="invalid envelope: event_id: missing"):
        Event.from_wire(_event(event_id=...))
    with pytest.raises(StreamError, match="invalid item payload: item_type: must not be empty"):
        Event.from_wire(_event(payload={"item_type": "", "data": {}}))
    with pytest.raises(StreamError, match="invalid log payload: level"):
        Event.from_wire(_event(type="log", payload={"level": "fatal", "message": "x"}))
    with pytest.raises(StreamError, match="byte strings are not allowed"):
        Event.from_wire(_event(payload={"item_type": "p", "data": {"b": b"x"}}))
    with pytest.raises(StreamError, match="NaN"):
        Event.from_wire(_event(payload={"item_type": "p", "data": {"f": float("nan")}}))
    with pytest.raises(StreamError, match="invalid artifact payload: artifact_id: not a UUID"):
        Event.from_wire(
            _event(type="artifact", payload={"artifact_id": "x", "name": "n", "content_type": "t", "size_bytes": 1})
        )
    with pytest.raises(StreamError, match="unknown frame type 'nope'"):
        parse_executor_frame({"type": "nope"})
    with pytest.raises(StreamError, match="type: missing"):
        parse_executor_frame({"x": 1})
    # explicit null counts as absent for optional keys
    assert Event.from_wire(_event(job_id=None)).job_id is None


def test_chunk_and_file_write_limits() -> None:
    aid = str(uuid.uuid4())
    with pytest.raises(StreamError, match="exceeds the limit"):
        ArtifactChunk.from_wire({"artifact_id": aid, "seq": 1, "data": b"x" * (MAX_CHUNK_SIZE + 1)})
    with pytest.raises(StreamError, match="write_id: must be >= 1"):
        FileWrite.from_wire({"write_id": 0, "filename": "a", "content_type": "t", "data": b""})


@pytest.mark.parametrize(
    ("request_obj", "message"),
    [
        ([], "must be a JSON object"),
        ({"attempt": 1}, "run_id must be a non-empty string"),
        ({"run_id": "r", "attempt": True}, "attempt must be an integer >= 1"),
        ({"run_id": "r", "attempt": 2, "job": {}, "script": "/s.py"}, "attempt > 1 requires parent_run_id"),
        ({"run_id": "r", "attempt": 1, "parent_run_id": "p", "job": {}, "script": "/s.py"}, "must not be set"),
        ({"run_id": "r", "attempt": 1, "job": [], "script": "/s.py"}, "job must be a JSON object"),
        ({"run_id": "r", "attempt": 1, "job": {}, "script": "s.py"}, "script must be an absolute path"),
        (
            {
                "run_id": "r",
                "attempt": 1,
                "job": {},
                "script": "/s.py",
                "proxy": {"protocol": "ftp", "host": "h", "port": 1},
            },
            "protocol must be http, https or socks5",
        ),
        (
            {
                "run_id": "r",
                "attempt": 1,
                "job": {},
                "script": "/s.py",
                "proxy": {"protocol": "http", "host": "h", "port": 1, "username": "u"},
            },
            "username and password",
        ),
    ],
)
def test_run_request_validation(request_obj: object, message: str) -> None:
    with pytest.raises(RunRequestError, match=message):
        RunRequest.from_wire(request_obj)


def test_frame_reader_classifies_stream_ends() -> None:
    async def read_all(data: bytes) -> list[object]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        fr = FrameReader(reader)
        out: list[object] = []
        while True:
            try:
                out.append(await fr.read())
            except EndOfStream:
                out.append("EOF")
                return out
            except FrameDecodeError as exc:
                out.append(type(exc).__name__)
                return out

    good = encode_frame({"type": "shutdown"})
    assert asyncio.run(read_all(good + good)) == [{"type": "shutdown"}, {"type": "shutdown"}, "EOF"]
    assert asyncio.run(read_all(good + good[:2])) == [{"type": "shutdown"}, "TruncatedFrame"]
    assert asyncio.run(read_all(good + good[:-1])) == [{"type": "shutdown"}, "TruncatedFrame"]
    assert asyncio.run(read_all(struct.pack(">I", MAX_PAYLOAD_SIZE + 1))) == ["FrameDecodeError"]
    assert asyncio.run(read_all(struct.pack(">I", 0))) == ["FrameDecodeError"]
    assert issubclass(TruncatedFrame, FrameDecodeError)


def test_encode_refuses_oversized_frames() -> None:
    with pytest.raises(ValueError, match="exceeds the limit"):
        encode_frame({"type": "x", "data": b"\0" * MAX_PAYLOAD_SIZE})


_json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)  # larger ones are bignums: tag 2/3, refused
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), _json_like, max_size=6), st.data())
@settings(max_examples=300)
def test_tag_free_bodies_decode_as_cbor2_does_and_any_tag_is_refused(obj: dict[str, Any], data: Any) -> None:
    """The unguarded fast path (no byte that can start a tag) decodes exactly what the guarded decoder does, and a
    tag anywhere (datetime, bignum, any number) is refused whatever else the body holds."""
    body = cbor2.dumps(obj)
    assert decode_payload(body) == cbor2.loads(body)
    tag = data.draw(st.integers(min_value=0, max_value=2**32))
    tagged = cbor2.dumps({**obj, "tagged": cbor2.CBORTag(tag, data.draw(_json_like))})
    with pytest.raises(FrameDecodeError, match="tags are not allowed"):
        decode_payload(tagged)
