"""The fast paths of the ingest hot path decide exactly as the general code they shortcut.

- ``FrameReader`` cuts frames out of chunks: any split of the byte stream gives the same bodies, counters and
  end-of-stream classification as a blocking reader, frames larger than a chunk included.
- ``Event.from_wire`` and ``validate_payload`` take a one-pass path for plain dicts: on any input they return
  the same event or raise the same error as the general path (reached here through a read-only mapping).
- ``Event.wire_size`` is the frame body's length, which is the event's CBOR length that policies count.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import types
from typing import Any

import attrs
import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quarry_core.errors import FrameDecodeError, StreamError, VersionMismatchError
from quarry_core.protocol import (
    CONTRACT_VERSION,
    EVENT_TYPES,
    MAX_PAYLOAD_SIZE,
    EndOfStream,
    Event,
    FrameReader,
    RunRequest,
    decode_payload,
    encode_frame,
    encode_map,
    event_size,
    parse_executor_frame,
    read_frame_sync,
    validate_payload,
)
from quarry_core.protocol.codec import speedups as codec_speedups
from quarry_core.protocol.frames import fast_event_rules
from quarry_core.runtime.ingest import decode_frame

# --------------------------------------------------------------------------- FrameReader


async def _read_all(data: bytes, cuts: list[int], chunk: int) -> tuple[list[bytes], str, int, int]:
    """Feed ``data`` in pieces cut at ``cuts`` (each piece arrives after the reader asked for more)."""
    reader = asyncio.StreamReader()
    fr = FrameReader(reader)
    fr.CHUNK = chunk
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]

    async def feed() -> None:
        for a, b in itertools.pairwise(bounds):
            await asyncio.sleep(0)
            reader.feed_data(data[a:b])
        await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    bodies: list[bytes] = []
    end = ""
    while True:
        try:
            bodies.append(await fr.read_body())
        except EndOfStream:
            end = "EOF"
            break
        except FrameDecodeError as exc:
            end = f"{type(exc).__name__}: {exc}"
            break
    await feeder
    return bodies, end, fr.frames, fr.bytes


def _read_sync(data: bytes) -> tuple[list[bytes], str]:
    stream = io.BytesIO(data)
    bodies: list[bytes] = []
    while True:
        try:
            m = read_frame_sync(stream)
        except FrameDecodeError as exc:
            return bodies, type(exc).__name__
        if m is None:
            return bodies, "EOF"
        bodies.append(encode_map(m))


frame_bodies = st.lists(
    st.dictionaries(
        st.text(max_size=6),
        st.binary(max_size=300) | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=40),
        max_size=4,
    ),
    max_size=8,
)


@given(frame_bodies, st.lists(st.integers(0, 4000), max_size=12), st.sampled_from([5, 64, 1024, 256 * 1024]))
@settings(max_examples=150, deadline=None)
def test_frame_reader_gives_the_same_frames_for_any_split(
    maps: list[dict[str, Any]], cuts: list[int], chunk: int
) -> None:
    data = b"".join(encode_frame(m) for m in maps)
    bodies, end, frames, nbytes = asyncio.run(_read_all(data, cuts, chunk))
    assert [decode_payload(b) for b in bodies] == maps
    assert end == "EOF"
    assert frames == len(maps) and nbytes == len(data)


@pytest.mark.parametrize("chunk", [7, 1024, 256 * 1024])
def test_frame_reader_classifies_truncation_with_counts(chunk: int) -> None:
    big = encode_frame({"type": "x", "data": b"a" * 5000})
    small = encode_frame({"type": "shutdown"})
    cases = {
        small + small[:3]: "TruncatedFrame: truncated frame: stream ended inside the length prefix (3 of 4 bytes)",
        small + big[:-10]: f"TruncatedFrame: truncated frame: stream ended inside a payload ({len(big) - 14} of "
        f"{len(big) - 4} bytes)",
        small + (0).to_bytes(4, "big") + small: "FrameDecodeError: empty frame (length 0)",
        small + (2**31).to_bytes(4, "big"): f"FrameDecodeError: frame length {2**31} exceeds the limit of",
    }
    for data, expected in cases.items():
        bodies, end, frames, _ = asyncio.run(_read_all(data, [len(small) + 2, len(data) - 1], chunk))
        assert len(bodies) == frames == 1
        assert end.startswith(expected), end
        assert _read_sync(data)[1] == expected.split(":")[0]


def test_frame_reader_keeps_frames_after_a_run_result_for_the_next_reader_call() -> None:
    """A warm executor's stream goes on after one run's ``run_result``: read-ahead bytes stay in the reader."""
    a, b = encode_frame({"type": "run_result", "n": 1}), encode_frame({"type": "run_result", "n": 2})

    async def two_calls() -> list[dict[str, Any]]:
        reader = asyncio.StreamReader()
        reader.feed_data(a + b)
        fr = FrameReader(reader)
        first = decode_payload(await fr.read_body())  # the whole a + b was taken from the stream here
        reader.feed_eof()
        return [first, decode_payload(await fr.read_body())]

    assert asyncio.run(two_calls()) == [{"type": "run_result", "n": 1}, {"type": "run_result", "n": 2}]


# --------------------------------------------------------------------------- envelope fast path

GOOD: dict[str, Any] = {
    "contract_version": CONTRACT_VERSION,
    "event_id": "6f1c2a3e-1b2c-4d5e-8f90-123456789abc",
    "run_id": "r1",
    "seq": 3,
    "type": "item",
    "ts": "2026-11-25T17:49:03.120Z",
    "payload": {"item_type": "row", "data": {"i": 1, "name": "x", "price": 0.5}},
    "attempt": 1,
}

odd_values = st.sampled_from(
    [
        None,
        "",
        "x",
        0,
        1,
        -1,
        True,
        2.5,
        b"b",
        [],
        {},
        {"item_type": "row", "data": {}},
        {"item_type": "", "data": {}},
        {"item_type": "row", "data": []},
        {"item_type": "row", "data": {"n": float("nan")}},
        {"item_type": "row", "data": {"n": 2**70}},
        {"item_type": "row"},
        "2026-11-25T17:49:03.120Z",
        "2026-11-25T17:49:03Z",
        "2026-11-25t17:49:03.120z",
        "2026-11-25T19:49:03.120+02:00",
        "2026-11-25T17:49:03.120",
        "2026-13-25T17:49:03.120Z",
        "item",
        "log",
        "nope",
        CONTRACT_VERSION,
        "0.0.1",
        "99.0.0",
    ]
)
keys = st.sampled_from(
    [*GOOD, "job_id", "parent_run_id", "spawned_by_run_id", "depth"],
)


def _outcome(fn: Any, d: Any) -> Any:
    try:
        event = fn(d)
    except (StreamError, VersionMismatchError) as exc:
        return type(exc).__name__, str(exc)
    return "event", attrs.astuple(event), event.wire_size


@given(st.dictionaries(keys, odd_values, max_size=5), st.sets(keys, max_size=2), st.booleans())
@settings(max_examples=400, deadline=None)
def test_envelope_fast_path_decides_like_the_general_path(
    changes: dict[str, Any], removed: set[str], check_payload: bool
) -> None:
    d = {k: v for k, v in {**GOOD, **changes}.items() if k not in removed}

    def fast(m: Any) -> Event:
        return Event.from_wire(m, check_payload=check_payload, wire_size=77)

    def general(m: Any) -> Event:  # a read-only mapping is not a dict: no fast path
        return Event.from_wire(types.MappingProxyType(m), check_payload=check_payload, wire_size=77)

    assert _outcome(fast, d) == _outcome(general, d)


def _decoded(fn: Any, body: bytes) -> Any:
    try:
        frame = fn(body)
    except (FrameDecodeError, StreamError, VersionMismatchError) as exc:
        return type(exc).__name__, str(exc)
    wire_size = getattr(frame, "wire_size", None)
    if isinstance(frame, Event) and frame._payload_valid:  # a promise: the payload check passes
        validate_payload(frame.type, frame.payload)
    fields = attrs.astuple(frame, filter=lambda a, _: a.name != "_payload_valid")
    return type(frame).__name__, fields, wire_size


@pytest.fixture(params=["compiled", "cbor2"])
def json_decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``decode_frame`` with quarry-speedups' event decoder and without it (``QUARRY_SPEEDUPS=0`` / not
    installed)."""
    from quarry_core.runtime import ingest

    decoder = ingest.event_decoder({}) if request.param == "compiled" else None
    if request.param == "compiled" and decoder is None:
        pytest.fail("quarry-speedups is not installed in this environment (uv sync --all-packages)")
    monkeypatch.setattr(ingest, "_decode_event", decoder)
    return str(request.param)


@given(
    st.dictionaries(keys, odd_values, max_size=4),
    st.sets(keys, max_size=2),
    st.dictionaries(st.text(max_size=3) | st.integers(-2, 2) | st.binary(max_size=2), odd_values, max_size=2),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_loop_decode_decides_like_the_general_path(
    json_decoder: str, changes: dict[str, Any], removed: set[str], extra: dict[Any, Any]
) -> None:
    """``decode_frame`` (the loop's fast path) against ``parse_executor_frame(decode_payload(…))``: envelopes with
    odd values, missing keys and extra keys, non-text ones included (a decode error before any envelope rule)."""
    d = {k: v for k, v in {**GOOD, **changes}.items() if k not in removed}
    d.update(extra)
    body = cbor2.dumps(d)

    def general(b: bytes) -> Any:
        return parse_executor_frame(decode_payload(b), check_payload=False, wire_size=len(b))

    # compared by repr: a NaN in the payload is never equal to itself
    assert repr(_decoded(decode_frame, body)) == repr(_decoded(general, body))


def test_loop_decode_refuses_a_non_text_key_beside_a_good_envelope(json_decoder: str) -> None:
    with pytest.raises(FrameDecodeError, match="non-text key"):
        decode_frame(cbor2.dumps({**GOOD, 7: "x"}))
    event = decode_frame(cbor2.dumps(GOOD))
    assert isinstance(event, Event) and event.wire_size == len(cbor2.dumps(GOOD))
    unknown = decode_frame(cbor2.dumps({**GOOD, "future_key": 1}))  # the general path: ignored, same event
    assert unknown == event and unknown.wire_size == len(cbor2.dumps({**GOOD, "future_key": 1}))


payload_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) | st.binary(max_size=2),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), c, max_size=3),
    max_leaves=8,
)


@given(
    st.fixed_dictionaries({}, optional={"item_type": payload_values, "data": payload_values, "extra": payload_values})
)
@settings(max_examples=400, deadline=None)
def test_item_payload_fast_path_decides_like_the_general_path(payload: dict[str, Any]) -> None:
    def outcome(p: Any) -> str:
        try:
            validate_payload("item", p)
        except StreamError as exc:
            return str(exc)
        return "ok"

    assert outcome(payload) == outcome(types.MappingProxyType(payload))


# --------------------------------------------------------------------------- wire size


def test_wire_size_is_the_frame_body_length_and_the_cbor_length_policies_count() -> None:
    from quarry_executor.envelope import EnvelopeFactory

    factory = EnvelopeFactory(RunRequest(run_id="r1", attempt=1, script="s.py", job={}, job_id="j", depth=2))
    for seq, (etype, payload) in enumerate(
        [
            ("item", {"item_type": "row", "data": {"i": 1, "name": "ünï", "price": 0.5, "tags": ["a", None]}}),
            ("log", {"level": "info", "message": "m" * 3000, "fields": {"k": 1}}),
            ("run_complete", {}),
        ],
        start=1,
    ):
        frame = factory.encode(etype, payload, seq)
        body = frame[4:]
        event = parse_executor_frame(decode_payload(body), wire_size=len(body))
        assert isinstance(event, Event)
        assert event.wire_size == len(body) == len(encode_map(event.to_wire()))
        assert event_size(event) == len(body)
    built = Event(event_id="e", run_id="r1", seq=1, type="item", ts=GOOD["ts"], payload=GOOD["payload"])
    assert built.wire_size is None
    assert event_size(built) == len(encode_map(built.to_wire()))
    decoded = Event.from_wire(GOOD, wire_size=999)
    assert decoded.wire_size == 999 and decoded == Event.from_wire(GOOD)  # not part of equality
    assert "wire_size" not in repr(decoded) and "wire_size" not in decoded.to_wire()
    changed = attrs.evolve(decoded, payload={"item_type": "row", "data": {}})
    assert changed.wire_size is None and event_size(changed) == len(encode_map(changed.to_wire()))
    assert set(EVENT_TYPES) >= {"item", "log", "run_complete"}


def test_compiled_decoder_is_optional_and_can_be_turned_off() -> None:
    from quarry_core.protocol.codec import json_map_decoder

    decoder = json_map_decoder({})
    assert decoder is not None, "quarry-speedups is part of the workspace (uv sync --all-packages)"
    assert decoder(cbor2.dumps(GOOD)) == cbor2.loads(cbor2.dumps(GOOD))
    assert decoder(cbor2.dumps({**GOOD, "blob": b"x"})) is None  # outside the JSON data model: cbor2 decides
    assert json_map_decoder({"QUARRY_SPEEDUPS": "0"}) is None


def test_only_a_valid_item_is_marked_checked_by_the_compiled_path(json_decoder: str) -> None:
    from quarry_core.protocol.frames import check_event_payload

    item = decode_frame(cbor2.dumps(GOOD))
    assert isinstance(item, Event)
    assert item._payload_valid is (json_decoder == "compiled")
    bad = decode_frame(cbor2.dumps({**GOOD, "payload": {"item_type": "", "data": {}}}))
    assert isinstance(bad, Event) and not bad._payload_valid
    with pytest.raises(StreamError, match="item_type: must not be empty"):
        check_event_payload(bad)
    log = decode_frame(cbor2.dumps({**GOOD, "type": "log", "payload": {"level": "loud", "message": "m"}}))
    assert isinstance(log, Event) and not log._payload_valid
    with pytest.raises(StreamError, match="level"):
        check_event_payload(log)
    assert not attrs.evolve(item, payload={"item_type": "", "data": {}})._payload_valid


def test_compiled_event_decoder_follows_the_accepted_version_and_the_canonical_ts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compiled decoder reads the rules' cells as they are when a frame arrives: a version the general path
    accepted (and a ``ts`` it found canonical) is then accepted by the compiled path too."""
    from quarry_core.protocol import frames
    from quarry_core.runtime import ingest

    monkeypatch.setattr(frames, "_accepted_version", [CONTRACT_VERSION])  # cells of this test's own
    monkeypatch.setattr(frames, "_canonical_ts", [""])
    decoder = ingest.event_decoder({})
    assert decoder is not None, "quarry-speedups is part of the workspace (uv sync --all-packages)"
    monkeypatch.setattr(ingest, "_decode_event", decoder)
    patch = CONTRACT_VERSION.rsplit(".", 1)[0] + ".9"  # same major and minor: accepted
    body = cbor2.dumps({**GOOD, "contract_version": patch})
    assert type(decoder(body)) is dict  # not the accepted text yet: the general path decides
    first = decode_frame(body)
    assert isinstance(first, Event) and first.contract_version == patch and not first._payload_valid
    assert frames._accepted_version[0] == patch
    second = decoder(body)  # now the compiled path builds it, equal to the general path's
    assert isinstance(second, Event) and second._payload_valid and second == first
    assert second.wire_size == first.wire_size == len(body)
    assert frames._canonical_ts[0] == GOOD["ts"]  # found canonical by the Python check, through the cell
    odd_ts = cbor2.dumps({**GOOD, "contract_version": patch, "ts": "2026-11-25T17:49:03.12Z"})
    assert type(decoder(odd_ts)) is dict  # not canonical: the general path normalises it
    assert decode_frame(odd_ts).ts == GOOD["ts"]


def test_compiled_event_decoder_sets_every_slot_of_the_event_class() -> None:

    speedups = pytest.importorskip("quarry_speedups", reason="quarry-speedups is not installed")
    assert set(speedups.EVENT_SLOTS) == {a.name for a in attrs.fields(Event)}  # a new field must be set there too

    class Plain:
        pass

    with pytest.raises(TypeError, match="has no slot 'event_id'"):
        speedups.EventDecoder(Plain, max_body=MAX_PAYLOAD_SIZE, **fast_event_rules())
    decoder = speedups.EventDecoder(Event, max_body=MAX_PAYLOAD_SIZE, **fast_event_rules())
    lineage = {**GOOD, "job_id": "j", "parent_run_id": "p", "spawned_by_run_id": "s", "depth": 2}
    event = decoder(cbor2.dumps(lineage))
    assert isinstance(event, Event)
    assert event == Event.from_wire(lineage)
    assert (event.job_id, event.parent_run_id, event.spawned_by_run_id, event.depth) == ("j", "p", "s", 2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.seq = 4  # type: ignore[misc]
    assert decoder(cbor2.dumps({**lineage, "depth": None})) == {**lineage, "depth": None}  # null: general path
    assert decoder(cbor2.dumps({**GOOD, "seq": True})) == {**GOOD, "seq": True}  # bool is not int
    assert decoder(b"\xa1\x61a\x40") is None  # a byte string: outside the JSON data model

    class Body(bytes):
        pass

    assert decoder(Body(cbor2.dumps(GOOD))) == event.__class__.from_wire(GOOD)  # a bytes subclass: the map path
    assert decoder(bytearray(cbor2.dumps(GOOD))) is None  # not bytes: the caller decodes with cbor2


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "cbor2"])
def test_frames_encode_to_cbor2_bytes_with_or_without_the_compiled_encoder(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quarry_core.protocol import codec
    from quarry_core.protocol.frames import ArtifactChunk

    if compiled:
        assert codec._encode_json_frame is not None, "quarry-speedups is part of the workspace (uv sync)"
        assert codec._encode_event_frame is not None
    else:
        monkeypatch.setattr(codec, "_encode_json", None)
        monkeypatch.setattr(codec, "_encode_json_frame", None)
        monkeypatch.setattr(codec, "_encode_event_frame", None)
    for obj in (
        GOOD,
        {**GOOD, "payload": {"item_type": "row", "data": {"ü": [1, -(2**63), 2.5, None, True, "ß" * 300]}}},
        ArtifactChunk(artifact_id="a", seq=1, is_last=True, data=b"\x00\x01"),  # bytes: cbor2 writes it
        types.MappingProxyType(GOOD),  # not a dict: cbor2 writes it
    ):
        wire = obj.to_wire() if isinstance(obj, ArtifactChunk) else dict(obj)
        body = cbor2.dumps(wire)
        assert codec.encode_map(wire) == body
        assert codec.encode_frame(obj) == len(body).to_bytes(4, "big") + body
    big = {"data": "x" * MAX_PAYLOAD_SIZE}
    with pytest.raises(ValueError, match=f"frame payload of {MAX_PAYLOAD_SIZE + 11} bytes exceeds the limit"):
        codec.encode_frame(big)
    with pytest.raises(ValueError, match="cannot encode frame"):
        codec.encode_map({"x": object()})
    # an event envelope, written without its map when compiled: the frame of the map either way
    lineage = {"job_id": "j", "parent_run_id": "p", "spawned_by_run_id": "s", "depth": 2}
    for payload, extra in ((GOOD["payload"], {}), ({"item_type": "r", "data": {"n": 2**70}}, lineage)):
        args = [GOOD[k] for k in ("contract_version", "event_id", "run_id", "seq", "type", "ts")]
        wire = {**GOOD, "payload": payload, **extra}
        assert codec.encode_event_frame(*args, payload, GOOD["attempt"], extra) == codec.encode_frame(wire)
    with pytest.raises(ValueError, match="exceeds the limit"):
        codec.encode_event_frame(*args, {"data": "x" * MAX_PAYLOAD_SIZE}, 1, {})
    with pytest.raises(ValueError, match="cannot encode frame"):
        codec.encode_event_frame(*args, {"x": object()}, 1, {})


def test_a_duplicate_envelope_key_decides_like_cbor2(json_decoder: str) -> None:
    """A map with a key twice (valid CBOR; the later value wins, as in cbor2) gives the general path's event,
    whichever decoder reads it: the compiled one builds it from the decoded map, not from the bytes."""
    body = cbor2.dumps(GOOD)
    assert body[0] == 0xA8  # a map of eight pairs: make it nine, the last one seq again
    dup = bytes([0xA9]) + body[1:] + cbor2.dumps("seq") + cbor2.dumps(99)
    expected = parse_executor_frame(cbor2.loads(dup), check_payload=False, wire_size=len(dup))
    got = decode_frame(dup)
    assert isinstance(got, Event) and got.seq == 99
    assert attrs.astuple(got)[:-1] == attrs.astuple(expected)[:-1]


# --------------------------------------------------------------------------- reading event frames in place


def _compiled_decoder(max_body: int = MAX_PAYLOAD_SIZE) -> Any:
    speedups = codec_speedups()
    if speedups is None:
        pytest.fail("quarry-speedups is not installed in this environment (uv sync --all-packages)")
    return speedups.EventDecoder(Event, max_body=max_body, **fast_event_rules())


@given(
    st.dictionaries(keys, odd_values, max_size=4),
    st.sets(keys, max_size=2),
    st.dictionaries(st.text(max_size=3), odd_values, max_size=2),
    st.binary(max_size=9),
    st.binary(max_size=9),
)
@settings(max_examples=300, deadline=None)
def test_event_at_reads_a_frame_in_place_as_the_decoder_reads_its_body(
    changes: dict[str, Any], removed: set[str], extra: dict[str, Any], before: bytes, after: bytes
) -> None:
    """``event_at(buffer, position)`` gives the event the decoder gives for the frame's body alone, wherever the
    frame sits in the buffer and whatever surrounds it, and ``None`` where the decoder gives no event."""
    decoder = _compiled_decoder()
    d = {k: v for k, v in {**GOOD, **changes}.items() if k not in removed}
    d.update(extra)
    body = cbor2.dumps(d)
    framed = len(body).to_bytes(4, "big") + body
    from_body = decoder(body)
    got = decoder.event_at(before + framed + after, len(before))
    if isinstance(from_body, Event):
        assert isinstance(got, Event) and got.wire_size == len(body)
        # compared by repr: a NaN in the payload is never equal to itself
        assert repr(attrs.astuple(got)) == repr(attrs.astuple(from_body))
    else:
        assert got is None


def _key_cache_slot(key: str) -> int:
    """The slot quarry-speedups' key cache gives ``key`` (FNV-1a, 1024 slots)."""
    h = 14695981039346656037
    for b in key.encode("ascii"):
        h = ((h ^ b) * 1099511628211) % 2**64
    return h & 1023


def test_event_at_finds_envelope_keys_also_when_a_payload_key_took_their_cache_slot() -> None:
    """The decoder finds an envelope key's place by identity with the key cache's own object, and by value when a
    payload key took that key's slot in the cache meanwhile: the frame is still read in place."""
    decoder = _compiled_decoder()
    envelope = ["ts", "attempt", "type"]  # keys that follow ``payload`` in the map
    rivals = {}
    for key in envelope:
        want = _key_cache_slot(key)
        rivals[key] = next(c for c in (f"k{i}" for i in range(200_000)) if _key_cache_slot(c) == want and c not in GOOD)
    payload = {"item_type": "row", "data": {rival: 1 for rival in rivals.values()}}
    d = {k: v for k, v in GOOD.items() if k not in (*envelope, "payload")}
    d = {**d, "payload": payload, **{k: GOOD[k] for k in envelope}}
    body = cbor2.dumps(d)
    framed = len(body).to_bytes(4, "big") + body
    for _ in range(3):  # the rivals evict the envelope keys; the next frame's keys evict the rivals
        event = decoder.event_at(framed, 0)
        assert isinstance(event, Event) and event == Event.from_wire(d)


def test_compiled_event_decoder_stores_each_value_once_and_honours_a_class_with_its_own_new() -> None:
    """Slots are filled straight at their offsets: each holds exactly one reference to its value; a slotted class
    that defines ``__new__`` is built as before, through ``object.__new__`` and the slot descriptors."""
    import sys

    speedups = pytest.importorskip("quarry_speedups", reason="quarry-speedups is not installed")
    decoder = _compiled_decoder()
    body = cbor2.dumps({**GOOD, "job_id": "j", "depth": 2})
    event = decoder(body)
    # the slot's reference and getrefcount's argument (counted outside ``assert``, which keeps its operands)
    counts = [sys.getrefcount(event.payload), sys.getrefcount(event.event_id), sys.getrefcount(event)]
    assert counts == [2, 2, 2]

    class OwnNew:
        __slots__ = speedups.EVENT_SLOTS
        made = 0

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            OwnNew.made += 1
            return super().__new__(cls)

    own = speedups.EventDecoder(OwnNew, max_body=MAX_PAYLOAD_SIZE, **fast_event_rules())(body)
    assert type(own) is OwnNew and OwnNew.made == 0  # object.__new__, as before: its own __new__ is not called
    assert [getattr(own, name) for name in speedups.EVENT_SLOTS] == [
        getattr(event, name) for name in speedups.EVENT_SLOTS
    ]
    count = sys.getrefcount(own.payload)
    assert count == 2


def test_compiled_events_are_untracked_and_share_the_texts_that_repeat() -> None:
    """An event the decoder builds is left out of the cyclic collector's lists (nothing it holds can refer back
    to it) and still freed by its reference count; the texts that repeat from event to event (contract version,
    run id, type, ts, lineage) are one object per value, a changed or non-ASCII one decoded as it is; envelope
    keys in any order are found."""
    import gc
    import sys

    decoder = _compiled_decoder()
    child = {**GOOD, "job_id": "j1", "parent_run_id": "p1", "spawned_by_run_id": "s1", "depth": 1}
    first, second = decoder(cbor2.dumps(child)), decoder(cbor2.dumps({**child, "seq": 4, "event_id": "other"}))
    assert isinstance(first, Event) and isinstance(second, Event)
    assert not gc.is_tracked(first) and not gc.is_tracked(second)
    shared = ("contract_version", "run_id", "type", "ts", "job_id", "parent_run_id", "spawned_by_run_id")
    assert all(getattr(first, name) is getattr(second, name) for name in shared)
    assert first.event_id is not second.event_id and (first.seq, second.seq) == (3, 4)
    changed = {**child, "run_id": "r2", "ts": "2026-11-25T17:49:03.121Z", "job_id": "jöb", "type": "log"}
    changed["payload"] = {"level": "info", "message": "m"}
    third = decoder(cbor2.dumps(changed))
    assert third == Event.from_wire(changed) and third.run_id == "r2" and third.job_id == "jöb"
    again = decoder(cbor2.dumps({**changed, "seq": 5}))
    assert again.job_id == "jöb" and again.run_id is third.run_id and again.type == "log"
    # the keys in the executor's order are taken by their bytes, any other order the usual way: the same event
    backwards = dict(reversed(list(child.items())))
    assert decoder(cbor2.dumps(backwards)) == decoder(cbor2.dumps(child)) == Event.from_wire(child)
    payload = first.payload
    before = sys.getrefcount(payload)
    del first  # freed by its reference count: its payload loses that reference
    after = sys.getrefcount(payload)
    assert after == before - 1


def test_event_at_takes_only_a_whole_frame_with_a_valid_length() -> None:
    decoder = _compiled_decoder(max_body=1000)
    body = cbor2.dumps(GOOD)
    framed = len(body).to_bytes(4, "big") + body
    buf = b"xy" + framed + framed
    assert decoder.event_at(buf, 2).seq == GOOD["seq"]
    assert decoder.event_at(buf, 2 + len(framed)).seq == GOOD["seq"]
    for cut in range(len(framed)):  # the frame has not arrived whole
        assert decoder.event_at(b"xy" + framed[:cut], 2) is None
    for pos in (-1, len(buf), len(buf) - 3, 1 << 40):  # no prefix there
        assert decoder.event_at(buf, pos) is None
    assert decoder.event_at((0).to_bytes(4, "big") + body, 0) is None  # an empty frame
    big = cbor2.dumps({**GOOD, "payload": {"item_type": "x", "data": {"s": "a" * 1000}}})
    assert decoder(big) is not None  # a valid event, but its frame is longer than max_body
    assert decoder.event_at(len(big).to_bytes(4, "big") + big, 0) is None
    assert _compiled_decoder().event_at(len(big).to_bytes(4, "big") + big, 0) is not None
    with pytest.raises(TypeError):
        decoder.event_at(bytearray(framed), 0)  # only bytes: the reader's buffer always is
    with pytest.raises(ValueError, match="max_body must be at least 1"):
        _compiled_decoder(max_body=0)


def test_buffered_event_consumes_and_counts_like_buffered_body() -> None:
    """Reading a buffer's event frames in place leaves the reader where cutting their bodies out would, with the
    same frame and byte counts, and a frame it does not take is left for ``buffered_body``."""
    decoder = _compiled_decoder()
    frames = [encode_frame({**GOOD, "seq": i + 1}) for i in range(5)]
    frames[3] = encode_frame({"type": "artifact_chunk", "artifact_id": "a", "seq": 1, "is_last": True, "data": b"x"})
    data = b"".join(frames) + frames[0][:7]  # and the start of one more

    async def read(in_place: bool) -> tuple[list[Any], int, int]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        fr = FrameReader(reader)
        first = await fr.read_body()  # fills the buffer
        got: list[Any] = [decode_payload(first)["seq"]]
        while True:
            event = fr.buffered_event(decoder.event_at) if in_place else None
            if event is not None:
                got.append(event.seq)
                continue
            body = fr.buffered_body()
            if body is None:
                break
            got.append(decode_payload(body)["seq"])
        return got, fr.frames, fr.bytes

    assert asyncio.run(read(True)) == asyncio.run(read(False)) == ([1, 2, 3, 1, 5], 5, sum(map(len, frames)))


def test_a_frame_capture_still_gets_every_frame_of_a_group(tmp_path: Any) -> None:
    """With ``--capture-frames`` the loop cuts every body out (the capture needs it): the file holds the stream
    as it arrived, grouped events included."""
    from quarry_core.runtime.ingest import Ingestor, RunIdentity
    from quarry_core.runtime.metrics import Collector
    from quarry_core.runtime.sidecars import SidecarWriter

    events = [{**GOOD, "seq": i + 1} for i in range(50)] + [{**GOOD, "seq": 51, "type": "run_complete", "payload": {}}]
    data = b"".join(encode_frame(e) for e in events)

    class Grouping:
        def __init__(self) -> None:
            self.groups: list[list[int]] = []

        async def ingest_events(self, evs: list[Event]) -> None:
            self.groups.append([e.seq for e in evs])

    async def no_control(frame: Any) -> None:
        pass

    async def go() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        metrics = Collector()
        with (tmp_path / "frames.bin").open("wb") as capture:
            ingestor = Ingestor(
                identity=RunIdentity(run_id=GOOD["run_id"], attempt=GOOD["attempt"]),
                policy=policy,  # type: ignore[arg-type]
                metrics=metrics,
                sidecars=SidecarWriter(None, metrics, no_control),  # type: ignore[arg-type]
                send_control=no_control,
                capture=capture,
            )
            return await ingestor.run(FrameReader(reader))

    policy = Grouping()
    result = asyncio.run(go())
    assert result.terminal is not None and not result.fatal
    assert policy.groups == [list(range(1, 52))]  # the stream arrived whole: one group
    assert (tmp_path / "frames.bin").read_bytes() == data


@given(
    st.lists(
        st.sampled_from(["item", "log", "bad_item", "gap", "other_run", "other_attempt", "lineage", "partial"]),
        max_size=12,
    ),
    st.integers(1, 14),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_take_items_takes_the_common_items_up_to_the_first_other_frame(
    kinds: list[str], limit: int, child: bool
) -> None:
    """``take_items`` takes exactly the leading frames the loop's one-condition check would take, at most
    ``limit`` in the list, and stops in front of the first other frame without consuming it."""
    decoder = _compiled_decoder()
    keys = ("job_id", "parent_run_id", "spawned_by_run_id", "depth")
    lineage = ("job", None, "spawner", 2) if child else None
    own = {k: v for k, v in zip(keys, lineage or (None,) * 4, strict=True) if v is not None}
    frames, common = [], []
    for i, kind in enumerate(kinds):
        env = {**GOOD, **own, "seq": 5 + i + (kind == "gap")}  # 5 is the one after last_seq
        if kind == "log":
            env.update(type="log", payload={"level": "info", "message": "m"})
        elif kind == "bad_item":
            env["payload"] = {"data": {}}
        elif kind == "other_run":
            env["run_id"] = "someone-else"
        elif kind == "other_attempt":
            env["attempt"] = GOOD["attempt"] + 1
        elif kind == "lineage":
            env = {**env, "job_id": "other-job"}
        frame = encode_frame(env)
        frames.append(frame[: len(frame) // 2] if kind == "partial" else frame)
        common.append(kind == "item")
    buf = b"ab" + b"".join(frames)
    out: list[Any] = ["already"]
    end = decoder.take_items(buf, 2, out, limit, 4, GOOD["run_id"], GOOD["attempt"], lineage)
    want = 0
    while want < len(common) and common[want] and want + 1 < limit:
        want += 1
    assert [e.seq for e in out[1:]] == list(range(5, 5 + want))
    assert all(e._payload_valid and e.wire_size == len(f) - 4 for e, f in zip(out[1:], frames, strict=False))
    assert end == 2 + sum(map(len, frames[:want]))


def test_frame_reader_advance_counts_frames_read_in_place() -> None:
    async def go() -> tuple[int, int, bytes]:
        reader = asyncio.StreamReader()
        frames = [encode_frame({"n": i}) for i in range(4)]
        reader.feed_data(b"".join(frames))
        reader.feed_eof()
        fr = FrameReader(reader)
        await fr.read_body()
        _, pos = fr.buffered()
        assert pos == len(frames[0])
        fr.advance(pos + len(frames[1]) + len(frames[2]), 2)
        rest = fr.buffered_body()
        assert rest is not None
        return fr.frames, fr.bytes, rest

    assert asyncio.run(go()) == (4, sum(len(encode_frame({"n": i})) for i in range(4)), encode_frame({"n": 3})[4:])
