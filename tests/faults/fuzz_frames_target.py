"""atheris (libFuzzer) target for the frame decoder and the CBOR envelope validation (issue 11 item 4).

Run by ``tests/faults/test_fuzz_atheris.py`` as a subprocess, because libFuzzer ends the process when it is done:

    python tests/faults/fuzz_frames_target.py <corpus dir> -runs=N -max_total_time=S -timeout=T

Each input is used two ways, chosen by its first byte:

- **bytes**: the rest is a byte stream read frame by frame with ``read_frame_sync`` (length prefix, size limit,
  CBOR decoding); every decoded map goes through ``parse_executor_frame`` and ``parse_control_frame``.
- **envelope**: the rest drives a ``FuzzedDataProvider`` that takes a valid frame of every kind and replaces, adds
  or deletes one field of the envelope or of the payload with a fuzzed CBOR value, so validation is reached
  with well-formed CBOR far more often than from raw bytes.

In both, quarry-speedups' compiled decoder (when installed) must decline the body or agree with ``decode_payload``,
and its event decoder must build the event the general path builds (or hand back the same map).

Any outcome but a classified error (``FrameDecodeError``, ``StreamError``, ``VersionMismatchError``) or a valid
frame is a crash: libFuzzer saves the input under ``-artifact_prefix`` and exits non-zero. A valid frame must
survive a round trip (encode, decode, parse) to the same wire bytes. A hang is caught by ``-timeout``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import atheris
import attrs

with atheris.instrument_imports():
    import cbor2

    from quarry_core.protocol import codec, frames, values
    from quarry_core.runtime import ingest

from quarry_core.errors import FrameDecodeError, StreamError, VersionMismatchError
from quarry_core.testing.fakes import ALL_EVENT_TYPES, make_chunk, make_event

CLASSIFIED = (FrameDecodeError, StreamError, VersionMismatchError)
FAST = codec.json_map_decoder({})  # quarry-speedups' compiled decoder, checked against cbor2 on every input
EVENTS = ingest.event_decoder({})  # and its event decoder, checked against the general path
MAX_FRAMES = 64

CONTROL_SEEDS: list[dict[str, Any]] = [
    {"type": "cancel", "reason": "signal"},
    {"type": "shutdown"},
    {"type": "file_write_ack", "write_id": "w1", "ok": True, "key": "files/a.txt"},
    {"type": "proxy_update", "proxy": {"protocol": "http", "host": "127.0.0.1", "port": 8080}},
]


def seed_frames() -> list[dict[str, Any]]:
    """Wire maps of a valid frame of every executor kind (and the control frames) to start from."""
    seeds = [make_event(i + 1, t).to_wire() for i, t in enumerate(ALL_EVENT_TYPES)]
    seeds.append(make_chunk("0b7e3f5c-4d1a-4c8e-9a57-2f1d3c4b5a69", 1, b"abc", is_last=True).to_wire())
    return seeds + CONTROL_SEEDS


SEEDS = seed_frames()


def _parse(d: dict[str, Any]) -> None:
    """Parse one decoded map as an executor frame and as a control frame; a valid frame must round-trip."""
    try:
        frame = frames.parse_executor_frame(d)
    except CLASSIFIED:
        pass
    else:
        wire = codec.encode_map(frame.to_wire())
        again = frames.parse_executor_frame(codec.decode_payload(wire))
        assert codec.encode_map(again.to_wire()) == wire, f"round trip changed {frame!r}"
    _parse_control(d)


def _parse_control(d: dict[str, Any]) -> None:
    try:
        frames.parse_control_frame(d)
    except CLASSIFIED:
        pass


def _compiled_agrees(body: bytes) -> None:
    """quarry-speedups' decoder (when installed) either declines ``body`` or returns what ``decode_payload``
    does, with the same types (compared by repr: a NaN is not equal to itself), inside the JSON data model."""
    if FAST is None:
        return
    got = FAST(body)
    if got is None:
        return
    assert repr(got) == repr(codec.decode_payload(body)), f"compiled decoder differs on {body.hex()}"
    assert values.json_value_error(got) is None, f"compiled decoder let a non-JSON value through: {body.hex()}"
    assert EVENTS is not None
    event = EVENTS(body)
    if isinstance(event, frames.Event):
        general = frames.parse_executor_frame(codec.decode_payload(body), check_payload=False, wire_size=len(body))
        assert repr(attrs.astuple(event)[:-1]) == repr(attrs.astuple(general)[:-1]), f"event differs: {body.hex()}"
        if event._payload_valid:  # a promise that the payload check passes
            frames.validate_payload(event.type, event.payload)
    else:
        assert repr(event) == repr(got), f"event decoder's map differs on {body.hex()}"


def check_bytes(data: bytes) -> None:
    _compiled_agrees(data)
    stream = io.BytesIO(data)
    for _ in range(MAX_FRAMES):
        try:
            d = codec.read_frame_sync(stream)
        except CLASSIFIED:
            return
        if d is None:
            return
        _parse(d)


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 2 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))
    if kind == 3:
        return fdp.ConsumeRegularFloat() if fdp.ConsumeBool() else fdp.ConsumeFloat()
    if kind == 4:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    if kind == 5:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
    if kind == 6:
        return fdp.PickValueInList(["1.0.0", "1.9.0", "2.0.0", "0.1", "", "item", "run_complete", "-1"])
    if kind == 7:
        return fdp.ConsumeIntInRange(-2, 2**64 + 1)
    if kind == 8:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {fdp.ConsumeUnicodeNoSurrogates(8): _value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def check_envelope(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    d = dict(fdp.PickValueInList(SEEDS))
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        target = d
        if isinstance(d.get("payload"), dict) and fdp.ConsumeBool():
            target = d["payload"] = dict(d["payload"])
        keys = sorted(target)
        key = fdp.PickValueInList(keys) if keys and fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(12)
        if fdp.ConsumeIntInRange(0, 4) == 0:
            target.pop(key, None)
        else:
            target[key] = _value(fdp)
    try:
        body = cbor2.dumps(d)
    except (TypeError, ValueError, OverflowError, cbor2.CBOREncodeError):
        return  # not representable in CBOR (e.g. an int beyond 2**64): nothing the executor could send
    _compiled_agrees(body)
    try:
        decoded = codec.decode_payload(body)
    except CLASSIFIED:
        return
    _parse(decoded)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 1:
        check_envelope(data[1:])
    else:
        check_bytes(data[1:])


def write_corpus(directory: Path) -> None:
    """Seed inputs: every valid frame as a byte stream, and a few envelope-mode starts."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, wire in enumerate(SEEDS):
        (directory / f"bytes-{i:02d}").write_bytes(b"\x00" + codec.encode_frame(wire))
        (directory / f"envelope-{i:02d}").write_bytes(b"\x01" + bytes([i]) * 16)
    stream = b"".join(codec.encode_frame(make_event(i + 1, "item")) for i in range(3))
    (directory / "bytes-stream").write_bytes(b"\x00" + stream)


if __name__ == "__main__":
    corpus = Path(sys.argv[1])
    write_corpus(corpus)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
