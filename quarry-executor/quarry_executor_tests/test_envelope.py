"""Event ids and envelopes: what the executor puts on every event frame."""

from __future__ import annotations

import collections
import os
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quarry_speedups
from quarry_executor import emit, envelope


def _oracle(raw: bytes) -> list[str]:
    return [str(uuid.UUID(bytes=raw[i : i + 16], version=4)) for i in range(0, len(raw) - 15, 16)]


EDGE = bytes(16) + b"\xff" * 16 + bytes(range(16)) + bytes(range(240, 256)) + b"\x7f\x80" * 8


@pytest.mark.parametrize("raw", [EDGE, os.urandom(16 * 512), EDGE + b"\x01\x02"], ids=["edges", "random", "tail"])
def test_ids_are_the_version_4_uuid_texts_of_the_random_bytes(raw: bytes) -> None:
    """The pure-Python formatter and quarry-speedups' (when installed) give ``uuid.UUID(bytes=…, version=4)``'s
    text of each whole 16-byte block (bytes beyond the last whole block are ignored)."""
    assert envelope._format_ids(raw) == _oracle(raw)
    assert quarry_speedups.uuid4_texts(raw) == _oracle(raw)  # a workspace member (uv sync --all-packages)
    with pytest.raises(TypeError, match="raw must be bytes"):
        quarry_speedups.uuid4_texts(bytearray(raw))


def test_event_ids_are_unique_random_uuids_across_pool_refills() -> None:
    pool = envelope._IdPool()
    ids = [pool.next() for _ in range(envelope._POOL_IDS * 2 + 3)]  # three pools
    assert len(set(ids)) == len(ids)
    for text in ids[:: envelope._POOL_IDS // 4]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


class _Text(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


_flat_values = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.binary(max_size=2),
    st.sampled_from([Decimal("1.5"), _Text("x"), _Int(3), _Float(1.5), (1, 2)]),
)


@given(st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), st.sampled_from([_Text("k")])), _flat_values))
@settings(max_examples=500, deadline=None)
def test_the_compiled_flat_payload_check_answers_as_the_python_one(d: dict[object, object]) -> None:
    """quarry-speedups' ``flat_json_map`` says ``True`` exactly where the emit path's own ``_flat_ok`` does, so
    which one runs never changes what an emit call accepts or how it checks the rest."""
    assert quarry_speedups.flat_json_map(d) is emit._flat_ok(d)
    assert emit._flat is quarry_speedups.flat_json_map  # a workspace member (uv sync --all-packages)


def test_flat_payload_check_edges() -> None:
    flat = quarry_speedups.flat_json_map
    assert flat({}) and flat({"a": "x", "b": True, "c": None, "d": 2**63 - 1, "e": -(2**63), "f": -0.0})
    for bad in (2**63, -(2**63) - 1, float("nan"), float("inf"), [1], {"x": 1}, b"x", _Int(1), _Text("x")):
        assert not flat({"a": bad}), bad
    assert not flat({1: "x"}) and not flat({_Text("k"): 1})
    assert not flat(collections.OrderedDict(a=1)) and not flat([("a", 1)]) and not flat(None)
