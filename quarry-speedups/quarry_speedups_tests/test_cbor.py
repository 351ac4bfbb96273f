"""quarry_speedups.decode_json_map against the reference decoder, cbor2.loads.

Contract under test: decode_json_map(body) either returns None, or a dict
that equals cbor2.loads(body) with identical Python types at every level and
lies inside the JSON model (str keys, int64 ints, finite floats, bool, None,
str, list, dict, nesting depth <= 200).  It must never raise.
"""

import math
import struct

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quarry_speedups import MAX_DEPTH, decode_json_map

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

HYPO = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------


def same(a, b, ordered=True):
    """Deep equality that also requires identical types (bool is not int,
    list is not tuple) and bit-identical floats (so -0.0 != 0.0).  With
    ordered=True dicts must also have the same key insertion order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y, ordered) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        if ordered:
            return all(same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True))
        return all(k in b and same(v, b[k], ordered) for k, v in a.items())
    return a == b


def is_clean(value, depth=0):
    """True if *value* lies inside the JSON model (container at *depth*)."""
    t = type(value)
    if t is dict:
        if depth > MAX_DEPTH:
            return False
        return all(type(k) is str and is_clean(v, depth + 1) for k, v in value.items())
    if t is list:
        if depth > MAX_DEPTH:
            return False
        return all(is_clean(v, depth + 1) for v in value)
    if t is int:
        return INT64_MIN <= value <= INT64_MAX
    if t is float:
        return math.isfinite(value)
    return t is str or t is bool or value is None


def is_clean_top(value):
    return type(value) is dict and is_clean(value, 0)


def check_contract(body):
    """Run the fast decoder and verify the contract.  Returns its result."""
    result = decode_json_map(body)  # must never raise
    if result is not None:
        expected = cbor2.loads(body)  # must succeed when we succeeded
        assert same(result, expected), (body.hex(), result, expected)
        assert is_clean_top(result), (body.hex(), result)
    return result


def reference(body):
    """cbor2.loads(body), or a sentinel exception instance on failure."""
    try:
        return cbor2.loads(body)
    except Exception as exc:  # any reference failure counts
        return exc


# ---------------------------------------------------------------------------
# A small reference *encoder* with knobs cbor2.dumps does not expose:
# non-shortest argument widths and a forced float width.
# ---------------------------------------------------------------------------


def head(major, arg, width=None):
    """Encode a CBOR head.  width None = shortest; else 0 (inline), 1, 2, 4, 8
    bytes, widened to the smallest width that can hold *arg*."""
    sizes = [(24, 0), (2**8, 1), (2**16, 2), (2**32, 4), (2**64, 8)]
    minimal = next(w for limit, w in sizes if arg < limit)
    if width is None or width < minimal:
        width = minimal
    if width == 0:
        return bytes([(major << 5) | arg])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([(major << 5) | info]) + arg.to_bytes(width, "big")


def encode_float(x, width):
    """Encode float *x* as half ('e'), single ('f') or double ('d').
    Values not representable in the requested width fall back to double."""
    if width == "e":
        try:
            return b"\xf9" + struct.pack(">e", x)
        except (OverflowError, struct.error):
            pass
    elif width == "f":
        try:
            return b"\xfa" + struct.pack(">f", x)
        except (OverflowError, struct.error):
            pass
    return b"\xfb" + struct.pack(">d", x)


def encode(value, draw_width, float_width):
    """Encode *value*; draw_width() picks an argument width (None = shortest)."""
    if value is False:
        return b"\xf4"
    if value is True:
        return b"\xf5"
    if value is None:
        return b"\xf6"
    if isinstance(value, int):
        if 0 <= value < 2**64:
            return head(0, value, draw_width())
        if -(2**64) <= value < 0:
            return head(1, -1 - value, draw_width())
        return cbor2.dumps(value)  # bignum -> tag 2 / 3
    if isinstance(value, float):
        return encode_float(value, float_width)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return head(3, len(raw), draw_width()) + raw
    if isinstance(value, list):
        return head(4, len(value), draw_width()) + b"".join(encode(v, draw_width, float_width) for v in value)
    if isinstance(value, dict):
        out = [head(5, len(value), draw_width())]
        for k, v in value.items():
            out.append(encode(k, draw_width, float_width))
            out.append(encode(v, draw_width, float_width))
        return b"".join(out)
    raise TypeError(value)


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

COMMON_KEYS = ["type", "seq", "ts", "event_id", "payload", "data", "x" * 32, "y" * 33, ""]

texts = st.one_of(
    st.text(max_size=20),  # any Unicode
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40),  # ASCII
    st.text(min_size=30, max_size=100),  # long
    st.sampled_from(COMMON_KEYS),
)
keys = st.one_of(st.sampled_from(COMMON_KEYS), texts)

ints = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-30, 30),
    st.integers(INT64_MAX - 3, INT64_MAX + 3),  # around +2**63
    st.integers(INT64_MIN - 3, INT64_MIN + 3),  # around -2**63
    st.integers(2**64 - 3, 2**64 + 3),  # around u64 / bignum
    st.integers(-(2**64) - 3, -(2**64) + 3),
    st.integers(),
)

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.floats(width=32, allow_subnormal=True),
    st.floats(width=16, allow_subnormal=True),
    st.sampled_from(
        [
            0.0,
            -0.0,
            5e-324,
            -5e-324,
            2.2250738585072014e-308,
            1.7976931348623157e308,
            65504.0,
            6.103515625e-05,
            5.960464477539063e-08,
            math.inf,
            -math.inf,
            math.nan,
        ]
    ),
)

scalars = st.one_of(texts, ints, floats, st.booleans(), st.none())

json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=40,
)

top_maps = st.dictionaries(keys, json_values, max_size=8)

float_widths = st.sampled_from(["e", "f", "d"])
arg_widths = st.sampled_from([None, None, None, 0, 1, 2, 4, 8])


@st.composite
def encodings(draw):
    """(value, body, via_cbor2_dumps) for a random top-level map."""
    value = draw(top_maps)
    how = draw(st.sampled_from(["dumps", "canonical", "custom"]))
    if how == "dumps":
        return value, cbor2.dumps(value), True
    if how == "canonical":
        return value, cbor2.dumps(value, canonical=True), True
    float_width = draw(float_widths)
    body = encode(value, lambda: draw(arg_widths), float_width)
    return value, body, False


# ---------------------------------------------------------------------------
# 1. Differential test
# ---------------------------------------------------------------------------


@HYPO
@given(encodings())
def test_differential(case):
    value, body, via_dumps = case
    result = check_contract(body)
    expected = cbor2.loads(body)
    if via_dumps and is_clean_top(value):
        # A clean value encoded by cbor2.dumps (what producers send) must
        # take the fast path and round-trip exactly.
        assert result is not None, body.hex()
        # (canonical=True sorts keys, so insertion order may differ.)
        assert same(result, value, ordered=False)
    # These encodings never use tags (except bignums, whose values are not
    # clean), byte strings or indefinite lengths, so the fast path must be
    # taken exactly when the decoded value is JSON-model clean.
    if is_clean_top(expected):
        assert result is not None, body.hex()
    else:
        assert result is None, body.hex()


@HYPO
@given(
    st.lists(st.sampled_from(["list", "map"]), min_size=185, max_size=215),
    st.sampled_from(["dumps", "canonical"]),
)
def test_differential_deep(kinds, how):
    """Chains of nested containers around the depth limit."""
    inner = {"leaf": 1}
    value = inner
    for kind in kinds:
        value = [value] if kind == "list" else {"k": value}
    top = {"root": value}
    body = cbor2.dumps(top, canonical=(how == "canonical"))
    result = check_contract(body)
    # Depth of the innermost {"leaf": 1} map, counting the top level as 0.
    innermost_depth = len(kinds) + 1
    if innermost_depth <= MAX_DEPTH:
        assert result is not None
    else:
        assert result is None


@HYPO
@given(st.sampled_from([(b"\xfa", 4), (b"\xfb", 8)]), st.data())
def test_random_single_and_double_precision_patterns(width, data):
    """Any bit pattern of a single- or double-precision float: decoded as cbor2 does, refused when not finite."""
    initial, size = width
    bits = data.draw(st.integers(0, 2 ** (8 * size) - 1))
    body = b"\xa1\x61a" + initial + bits.to_bytes(size, "big")
    result = check_contract(body)
    expected = cbor2.loads(body)["a"]
    assert (result is None) == (not math.isfinite(expected))


def test_every_half_precision_pattern():
    for bits in range(0x10000):
        body = b"\xa1\x61a\xf9" + bits.to_bytes(2, "big")
        result = check_contract(body)
        expected = cbor2.loads(body)["a"]
        assert (result is None) == (not math.isfinite(expected)), hex(bits)


# ---------------------------------------------------------------------------
# 2. Mutation test
# ---------------------------------------------------------------------------


@st.composite
def mutated(draw):
    _, body, _ = draw(encodings())
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data.insert(pos, draw(st.integers(0, 255)))
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@HYPO
@given(mutated())
def test_mutation(body):
    check_contract(body)  # never raises; any dict agrees with cbor2 and is clean


@HYPO
@given(st.binary(max_size=64))
def test_random_bytes(body):
    check_contract(b"\xa1" + body)
    check_contract(body)


# ---------------------------------------------------------------------------
# 3. Hand-written cases
# ---------------------------------------------------------------------------


def h(hexstr):
    return bytes.fromhex(hexstr.replace(" ", ""))


def assert_none(body):
    assert decode_json_map(body) is None, body.hex()


def assert_ok(body):
    result = check_contract(body)
    assert result is not None, body.hex()
    return result


# {"a": <value>}
def in_map(value_hex):
    return h("a1 61 61 " + value_hex)


def test_simple_example():
    value = {"s": "x", "i": -5, "f": 1.5, "t": True, "n": None, "l": [1, [2]], "m": {}}
    assert same(assert_ok(cbor2.dumps(value)), value)


@pytest.mark.parametrize(
    "hexstr",
    [
        "c0 74 323031332d30332d32315432303a30343a30305a",  # tag 0 datetime
        "c1 1a 514b67b0",  # tag 1 epoch
        "c2 41 01",  # tag 2 bignum (small!)
        "c3 41 01",  # tag 3 negative bignum
        "d8 20 63 612f62",  # tag 32 URI
        "d9 d9f7 01",  # self-describe tag 55799
        "db 0000000000000001 01",  # 8-byte tag number
    ],
)
def test_tags_rejected(hexstr):
    assert_none(in_map(hexstr))


def test_tags_rejected_elsewhere():
    assert_none(h("d9 d9f7 a0"))  # tagged top-level map
    assert_none(h("a1 c0 61 61 01"))  # tagged key
    assert_none(in_map("81 c1 01"))  # tag inside array


def test_byte_strings_rejected():
    assert_none(in_map("41 ff"))
    assert_none(in_map("40"))
    assert_none(h("a1 41 61 01"))  # byte-string key
    assert_none(in_map("81 40"))


@pytest.mark.parametrize(
    "body",
    [
        h("bf 61 61 01 ff"),  # indefinite top-level map
        h("bf ff"),
        in_map("5f 41 61 ff"),  # indefinite byte string
        in_map("7f 61 61 ff"),  # indefinite text string
        in_map("9f 01 ff"),  # indefinite array
        in_map("bf ff"),  # indefinite nested map
        h("a1 7f 61 61 ff 01"),  # indefinite text key
    ],
)
def test_indefinite_lengths_rejected(body):
    assert not isinstance(reference(body), Exception)  # valid for cbor2
    assert_none(body)


def test_break_and_info31_rejected():
    for b in ["ff", "1f", "3f", "df"]:
        assert_none(in_map(b))
    assert_none(h("a1 ff 01"))
    assert_none(h("ff"))


@pytest.mark.parametrize(
    "simple", ["f7"] + [f"{b:02x}" for b in range(0xE0, 0xF4)] + ["f8 00", "f8 13", "f8 20", "f8 ff"]
)
def test_other_simple_values_rejected(simple):
    assert_none(in_map(simple))


def test_false_true_null_accepted():
    assert same(assert_ok(in_map("f4")), {"a": False})
    assert same(assert_ok(in_map("f5")), {"a": True})
    assert same(assert_ok(in_map("f6")), {"a": None})


@pytest.mark.parametrize(
    "hexstr",
    [
        "f9 7e00",
        "f9 7c01",
        "f9 fe00",
        "f9 7c00",
        "f9 fc00",  # half
        "fa 7fc00000",
        "fa 7f800001",
        "fa 7f800000",
        "fa ff800000",  # single
        "fb 7ff8000000000000",
        "fb 7ff0000000000001",
        "fb 7ff0000000000000",  # double
        "fb fff0000000000000",
        "fb fff8000000000000",
    ],
)
def test_nan_and_infinity_rejected(hexstr):
    assert not math.isfinite(cbor2.loads(in_map(hexstr))["a"])
    assert_none(in_map(hexstr))


@pytest.mark.parametrize(
    ("hexstr", "value"),
    [
        ("f9 3c00", 1.0),
        ("f9 8000", -0.0),
        ("f9 0001", 2.0**-24),
        ("f9 7bff", 65504.0),
        ("f9 0400", 2.0**-14),
        ("f9 03ff", 1023 * 2.0**-24),
        ("f9 c000", -2.0),
        ("fa 3dcccccd", struct.unpack(">f", h("3dcccccd"))[0]),  # 0.1f widened, not 0.1
        ("fa 00000001", 2.0**-149),
        ("fa 80000000", -0.0),
        ("fa 7f7fffff", 3.4028234663852886e38),
        ("fb 0000000000000001", 5e-324),
        ("fb 3fb999999999999a", 0.1),
        ("fb 7fefffffffffffff", 1.7976931348623157e308),
    ],
)
def test_floats_decoded_like_cbor2(hexstr, value):
    assert same(assert_ok(in_map(hexstr)), {"a": value})


def test_int64_bounds():
    assert same(assert_ok(in_map("1b 7fffffffffffffff")), {"a": INT64_MAX})
    assert_none(in_map("1b 8000000000000000"))  # 2**63
    assert_none(in_map("1b ffffffffffffffff"))  # 2**64 - 1
    assert same(assert_ok(in_map("3b 7fffffffffffffff")), {"a": INT64_MIN})
    assert_none(in_map("3b 8000000000000000"))  # -2**63 - 1
    assert_none(in_map("3b ffffffffffffffff"))  # -2**64
    assert same(assert_ok(in_map("3b 7ffffffffffffffe")), {"a": INT64_MIN + 1})
    assert same(assert_ok(in_map("20")), {"a": -1})
    assert same(assert_ok(in_map("00")), {"a": 0})
    for v in (INT64_MAX, INT64_MIN, INT64_MAX + 1, INT64_MIN - 1, 2**64, -(2**64) - 1):
        body = cbor2.dumps({"a": v})
        assert (decode_json_map(body) is None) == (not INT64_MIN <= v <= INT64_MAX)


@pytest.mark.parametrize("major", range(8))
@pytest.mark.parametrize("info", [28, 29, 30])
def test_reserved_additional_info_rejected(major, info):
    b = bytes([(major << 5) | info])
    assert_none(b"\xa1\x61a" + b + b"\x00" * 8)
    assert_none(b + b"\x00" * 8)  # at top level
    assert_none(b"\xa1" + b + b"\x00" * 8)  # as a key


@pytest.mark.parametrize(
    "raw",
    [
        "c3 28",  # invalid continuation byte
        "80",  # lone continuation byte
        "c0 af",  # overlong encoding of '/'
        "e0 80 af",  # overlong 3-byte
        "ed a0 80",  # UTF-8-encoded surrogate U+D800
        "ed bf bf",  # UTF-8-encoded surrogate U+DFFF
        "f4 90 80 80",  # code point above U+10FFFF
        "f8 88 80 80 80",  # 5-byte form
        "ff",
        "e2 82",  # truncated multi-byte sequence
        "41 42 43 44 45 46 47 48 c3",  # error after an ASCII run of 8
    ],
)
def test_invalid_utf8_rejected(raw):
    data = h(raw)
    as_value = b"\xa1\x61a" + bytes([0x60 | len(data)]) + data
    as_key = b"\xa1" + bytes([0x60 | len(data)]) + data + b"\x01"
    for body in (as_value, as_key):
        assert isinstance(reference(body), Exception)
        assert_none(body)


def test_valid_utf8_accepted():
    for s in [
        "é",
        "\uffff",
        "\U0010ffff",
        "日本語テキスト",
        "a" * 7 + "é",
        "a" * 8 + "é",
        "a" * 40 + "é" + "b" * 40,
        "\x00",
        "é" * 20,
        "x" * 32 + "é",
    ]:
        body = cbor2.dumps({s: s, "k": [s]})
        assert same(assert_ok(body), {s: s, "k": [s]})


def test_non_ascii_position_in_word_scan():
    # Put a single non-ASCII char at every offset of a 24-byte string so both
    # the 8-byte-word loop and the tail loop of the ASCII check are exercised.
    for i in range(24):
        s = "a" * i + "\u00e9" + "b" * (23 - i)
        assert same(assert_ok(cbor2.dumps({"k": s, s: 1})), {"k": s, s: 1})


def test_truncated_rejected():
    value = {"event": "x" * 40, "n": [1, -2, 3.5, 2**40, None, True, {"é": "ü"}], "f": 0.1}
    for body in (cbor2.dumps(value), cbor2.dumps(value, canonical=True)):
        assert_ok(body)
        for cut in range(len(body)):
            assert isinstance(reference(body[:cut]), Exception)
            assert_none(body[:cut])


def test_trailing_bytes_rejected():
    body = cbor2.dumps({"a": 1})
    for extra in (b"\x00", b"\xa0", b"\xff", b"\xa1\x61a\x01", b"garbage"):
        # cbor2.loads silently ignores trailing bytes ...
        assert same(cbor2.loads(body + extra), {"a": 1})
        # ... but the fast path declines, leaving the decision to the caller.
        assert_none(body + extra)


def test_non_text_keys_rejected():
    assert_none(h("a1 01 01"))  # int key
    assert_none(h("a1 20 01"))  # negative int key
    assert_none(h("a1 41 61 01"))  # bytes key
    assert_none(h("a1 f4 01"))  # bool key
    assert_none(h("a1 f6 01"))  # null key
    assert_none(h("a1 f9 3c00 01"))  # float key
    assert_none(h("a1 80 01"))  # array key (cbor2: tuple)
    assert_none(h("a1 a0 01"))  # map key (cbor2: frozendict)
    assert_none(cbor2.dumps({"a": {"b": {1: 2}}}))  # nested map with int key
    assert_none(cbor2.dumps({"a": [{"ok": 1}, {2: 3}]}))
    assert_none(h("a2 61 61 01 01 01"))  # second key is an int


def nest(depth_of_innermost, kind):
    """Top-level map whose innermost container sits at the given depth."""
    value = {} if kind == "map" else []
    for _ in range(depth_of_innermost - 1):
        value = {"k": value} if kind == "map" else [value]
    return {"k": value}


@pytest.mark.parametrize("kind", ["map", "list"])
def test_depth_limit(kind):
    ok = cbor2.dumps(nest(MAX_DEPTH, kind))
    too_deep = cbor2.dumps(nest(MAX_DEPTH + 1, kind))
    assert same(assert_ok(ok), cbor2.loads(ok))
    assert cbor2.loads(too_deep)  # cbor2 itself allows up to 400
    assert_none(too_deep)
    assert_none(cbor2.dumps(nest(390, kind)))


def test_depth_limit_scalars_at_max_depth():
    # Scalars inside a container at depth 200 are fine.
    value = [1, "x", 2.5, None]
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert same(assert_ok(cbor2.dumps({"k": value})), {"k": value})


def test_duplicate_keys_last_wins():
    body = h("a3 61 61 01 61 62 02 61 61 03")  # {"a":1, "b":2, "a":3}
    expected = cbor2.loads(body)
    assert list(expected.items()) == [("a", 3), ("b", 2)]
    result = assert_ok(body)
    assert list(result.items()) == [("a", 3), ("b", 2)]
    nested = h("a1 61 6d a2 61 78 f5 61 78 f4")  # {"m": {"x": true, "x": false}}
    assert same(assert_ok(nested), cbor2.loads(nested))


def test_non_shortest_arguments_accepted():
    cases = [
        "b8 01 61 61 01",  # map count in 1 byte
        "b9 0001 61 61 01",  # map count in 2 bytes
        "ba 00000001 61 61 01",
        "bb 0000000000000001 61 61 01",  # map count in 8 bytes
        "a1 78 01 61 01",  # key length in 1 byte
        "a1 79 0001 61 01",
        "a1 7a 00000001 61 01",
        "a1 7b 0000000000000001 61 01",
        "a1 61 61 18 05",  # int 5 in 1 byte
        "a1 61 61 1b 0000000000000005",  # int 5 in 8 bytes
        "a1 61 61 38 00",  # -1 in 1 byte
        "a1 61 61 3b 0000000000000000",  # -1 in 8 bytes
        "a1 61 61 98 01 01",  # array count in 1 byte
        "a1 61 61 9b 0000000000000002 01 02",  # array count in 8 bytes
        "a1 61 61 b8 00",  # empty map, count in 1 byte
        "a1 61 61 78 00",  # empty string, length in 1 byte
        "a1 61 61 fb 3ff0000000000000",  # 1.0 as double
        "a1 61 61 fa 3f800000",  # 1.0 as single
    ]
    for c in cases:
        body = h(c)
        assert same(assert_ok(body), cbor2.loads(body)), c


@pytest.mark.parametrize(
    "body",
    [
        b"",
        h("01"),
        h("20"),
        h("61 61"),
        h("80"),
        h("81 a0"),
        h("f6"),
        h("f5"),
        h("fb 3ff0000000000000"),
        h("40"),
        h("c0 a0"),
    ],
)
def test_top_level_must_be_map(body):
    assert_none(body)


def test_non_bytes_input_rejected():
    body = cbor2.dumps({"a": 1})
    assert_none(bytearray(body))
    assert_none(memoryview(body))
    assert_none(body.decode("latin-1"))
    assert_none(None)
    assert_none(12)


@pytest.mark.parametrize(
    "body",
    [
        h("bb ffffffffffffffff"),  # absurd map count
        h("bb 7fffffffffffffff 61 61 01"),
        h("a1 61 61 9b ffffffffffffffff"),  # absurd array count
        h("a1 61 61 9b 7fffffffffffffff 01"),
        h("a1 61 61 7b ffffffffffffffff"),  # absurd text length
        h("a1 61 61 7b 7fffffffffffffff 61"),
        h("a1 7b ffffffffffffffff"),  # absurd key length
        h("ba ffffffff"),
        h("a2 61 61 01"),  # count larger than content
        h("a1 61 61 82 01"),
        h("a1 61 61 62 61"),
    ],
)
def test_oversized_lengths_rejected(body):
    assert_none(body)


def test_key_cache_correctness():
    # Many distinct short keys: forces slot collisions / replacements; every
    # key must still decode to the right string (no stale cache hits).
    for _ in range(3):
        keys = [f"k{i:05d}" for i in range(5000)]
        value = {k: i for i, k in enumerate(keys)}
        assert same(assert_ok(cbor2.dumps(value)), value)
    # Same length, differing only in the last byte, plus empty and 32/33-byte keys.
    value = {"abcd": 1, "abce": 2, "": 3, "z" * 32: 4, "z" * 33: 5, "z" * 31 + "y": 6}
    for _ in range(3):
        assert same(assert_ok(cbor2.dumps(value)), value)


def test_cached_keys_are_plain_str():
    body = cbor2.dumps({"type": 1})
    a = decode_json_map(body)
    b = decode_json_map(body)
    assert [type(k) for k in a] == [str]
    assert next(iter(a)) is next(iter(b))  # the key object was reused


@pytest.mark.parametrize("n", [4095, 4096, 4097, 20_000])
def test_long_arrays_either_side_of_the_presize_limit(n):
    value = {"a": list(range(n)), "b": [{"k": i} for i in range(n // 100)]}
    body = cbor2.dumps(value)
    assert same(assert_ok(body), value)
    assert_none(body[:-1])  # truncated inside the last element
    claim = b"\xa1\x61a" + head(4, n) + b"\x00" * (n - 1) + b"\xf7"  # the last element is undefined
    assert_none(claim)
