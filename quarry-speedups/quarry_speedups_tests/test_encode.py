"""quarry_speedups.encode_json_map / encode_json_frame against the reference encoder, cbor2.dumps.

Contract under test: encode_json_map(obj) returns exactly cbor2.dumps(obj) when obj is inside the JSON-model
subset (an exact dict at the top; exact str keys; exact str / bool / None / int in [-2**64, 2**64 - 1] / float /
list / tuple / dict values; strict-UTF-8 strings; containers at most MAX_DEPTH levels below the top-level map),
and None otherwise; encode_json_frame(obj) returns the same body behind a 4-byte big-endian length. Neither ever
raises (MemoryError aside) nor runs Python code of the objects it is given.

"Depth" is the decoder's: the top-level map is depth 0, a container directly inside it is depth 1, and a
container at depth MAX_DEPTH (200) is accepted while one at depth 201 is not (scalars inside a depth-200
container are fine).
"""

import collections
import datetime
import decimal
import enum
import math
import struct
import sys
import tracemalloc
import uuid

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quarry_speedups
from quarry_speedups import MAX_DEPTH, _encode, decode_json_map, encode_json_frame, encode_json_map

U64_MAX = 2**64 - 1
NEG_U64_MIN = -(2**64)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

HYPO = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HYPO_SMALL = settings(HYPO, max_examples=200)


# ---------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------


def in_subset(value, depth=0):
    """True if *value* (a container at *depth*, or a scalar) is inside the encoder's subset."""
    t = type(value)
    if t is dict or t is list or t is tuple:
        if depth > MAX_DEPTH:
            return False
        if t is dict:
            return all(type(k) is str and in_subset(k) and in_subset(v, depth + 1) for k, v in value.items())
        return all(in_subset(v, depth + 1) for v in value)
    if t is str:
        try:
            value.encode("utf-8")  # strict: a lone surrogate fails
        except UnicodeEncodeError:
            return False
        return True
    if t is int:
        return NEG_U64_MIN <= value <= U64_MAX
    return t is float or t is bool or value is None


def in_subset_top(value):
    return type(value) is dict and in_subset(value, 0)


def check(value):
    """Run both entry points, check them against cbor2 and the subset oracle; return the map's result."""
    body = encode_json_map(value)  # must never raise
    frame = encode_json_frame(value)
    assert body is None or type(body) is bytes
    if in_subset_top(value):
        expected = cbor2.dumps(value)
        assert body == expected, (value, body, expected)
        assert frame == len(expected).to_bytes(4, "big") + expected
    else:
        assert body is None, value
        assert frame is None, value
    return body


def head(major, arg):
    """A CBOR head with the shortest argument, written independently of both encoders under test."""
    if arg < 24:
        return bytes([(major << 5) | arg])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 2 ** (8 * width):
            return bytes([(major << 5) | info]) + arg.to_bytes(width, "big")
    raise ValueError(arg)


def text(s):
    raw = s.encode("utf-8")
    return head(3, len(raw)) + raw


def same(a, b):
    """Deep equality with identical types (bool is not int) and bit-identical floats (so -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return a == b


def as_decoded(value):
    """What decoding *value*'s CBOR gives back: tuples become lists."""
    if isinstance(value, dict):
        return {k: as_decoded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_decoded(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

COMMON_KEYS = ["contract_version", "event_id", "run_id", "seq", "type", "ts", "payload", "attempt", ""]

texts = st.one_of(
    st.text(max_size=20),  # any code point but surrogates: 1- to 4-byte UTF-8, astral included
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40),  # ASCII (the no-copy path)
    st.text(alphabet=st.characters(min_codepoint=0x10000), max_size=10),  # astral only (UCS-4 strings)
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=30),  # Latin-1 (UCS-1, not ASCII)
    st.text(min_size=20, max_size=300),  # string lengths across the 1-byte / 2-byte head boundary
    st.sampled_from(COMMON_KEYS),
)

# every argument width (inline, 1, 2, 4, 8 bytes) on both sides of each boundary, both signs
WIDTH_EDGES = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, INT64_MAX, 2**63, U64_MAX]
edge_ints = st.sampled_from(WIDTH_EDGES + [-1 - e for e in WIDTH_EDGES] + [-e for e in WIDTH_EDGES])
ints = st.one_of(
    st.integers(NEG_U64_MIN, U64_MAX),
    st.integers(-300, 300),
    st.integers(INT64_MIN, INT64_MAX),
    edge_ints,
    st.tuples(edge_ints, st.integers(-2, 2)).map(sum).filter(lambda n: NEG_U64_MIN <= n <= U64_MAX),
)

SPECIAL_FLOATS = [
    0.0,
    -0.0,
    1.5,  # exact in half precision: still written as a double
    0.1,
    5e-324,  # smallest subnormal
    -5e-324,
    2.2250738585072014e-308,  # smallest normal
    2.225073858507201e-308,  # largest subnormal
    1.7976931348623157e308,
    -1.7976931348623157e308,
    65504.0,
    3.4028234663852886e38,
    1e300,
    2.0**-24,
    math.inf,
    -math.inf,
    math.nan,
    -math.nan,
    struct.unpack(">d", bytes.fromhex("7ff0000000000001"))[0],  # signalling NaN
    struct.unpack(">d", bytes.fromhex("fff8000000000123"))[0],  # negative NaN with a payload
]
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.floats(width=32),
    st.floats(width=16),
    st.integers(0, 2**64 - 1).map(lambda bits: struct.unpack(">d", bits.to_bytes(8, "big"))[0]),  # any pattern
    st.sampled_from(SPECIAL_FLOATS),
)

scalars = st.one_of(texts, ints, floats, st.booleans(), st.none())


def containers(children, keys=texts):
    return st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(keys, children, max_size=6),
    )


json_values = st.recursive(scalars, containers, max_leaves=40)
top_maps = st.dictionaries(texts, json_values, max_size=10)


# ---------------------------------------------------------------------------
# 1. Differential: byte for byte against cbor2.dumps
# ---------------------------------------------------------------------------


@HYPO
@given(top_maps)
def test_equals_cbor2_dumps(value):
    body = encode_json_map(value)
    assert body is not None, value  # everything generated is inside the subset
    assert body == cbor2.dumps(value)
    frame = encode_json_frame(value)
    assert frame == len(body).to_bytes(4, "big") + body


@HYPO_SMALL
@given(
    st.lists(st.sampled_from(["map", "list", "tuple", "map+", "list+", "tuple+"]), min_size=180, max_size=215),
    scalars,
)
def test_deep_chains_equal_cbor2_dumps(kinds, leaf):
    """Chains of containers around the depth limit; a "+" level also holds a sibling (its level number)."""
    value = {"leaf": leaf}
    for level, kind in enumerate(kinds):
        if kind.startswith("map"):
            value = {"k": value, "s": level} if kind.endswith("+") else {"k": value}
        else:
            value = [level, value] if kind.endswith("+") else [value]
            if kind.startswith("tuple"):
                value = tuple(value)
    body = check({"root": value})
    assert (body is not None) == (len(kinds) + 1 <= MAX_DEPTH)  # {"leaf": ...} sits at depth len(kinds) + 1


@HYPO_SMALL
@given(top_maps)
def test_round_trip_through_the_decoder(value):
    """decode_json_map(encode_json_map(v)) gives v back (tuples as lists) wherever the decoder accepts it."""
    body = encode_json_map(value)
    assert body is not None
    decoded = decode_json_map(body)  # None for NaN, infinities and integers beyond 64-bit signed
    if decoded is not None:
        assert same(decoded, as_decoded(value))


round_trip_scalars = st.one_of(
    texts, st.integers(INT64_MIN, INT64_MAX), edge_ints.filter(lambda n: INT64_MIN <= n <= INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([0.0, -0.0, 5e-324, 1.5]),
    st.booleans(), st.none(),
)  # fmt: skip


@HYPO
@given(st.dictionaries(texts, st.recursive(round_trip_scalars, containers, max_leaves=40), max_size=10))
def test_round_trip_inside_the_decoders_model(value):
    """Inside the decoder's model (64-bit ints, finite floats) the round trip always takes the fast path."""
    body = encode_json_map(value)
    assert body is not None
    decoded = decode_json_map(body)
    assert decoded is not None, body.hex()
    assert same(decoded, as_decoded(value))


# ---------------------------------------------------------------------------
# 2. Pinned bytes (independent of cbor2: a cbor2 upgrade that changes them shows up here)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hexstr"),
    [
        (1.5, "fb 3ff8000000000000"),  # a double, not half precision
        (0.1, "fb 3fb999999999999a"),
        (0.0, "fb 0000000000000000"),
        (-0.0, "fb 8000000000000000"),
        (5e-324, "fb 0000000000000001"),
        (1.7976931348623157e308, "fb 7fefffffffffffff"),
        (65504.0, "fb 40effc0000000000"),
        (math.nan, "f9 7e00"),
        (-math.nan, "f9 7e00"),
        (SPECIAL_FLOATS[-2], "f9 7e00"),
        (SPECIAL_FLOATS[-1], "f9 7e00"),
        (math.inf, "f9 7c00"),
        (-math.inf, "f9 fc00"),
        (True, "f5"),
        (False, "f4"),
        (None, "f6"),
        (0, "00"),
        (23, "17"),
        (24, "18 18"),
        (-1, "20"),
        (-24, "37"),
        (-25, "38 18"),
        (U64_MAX, "1b ffffffffffffffff"),
        (NEG_U64_MIN, "3b ffffffffffffffff"),
        (2**63, "1b 8000000000000000"),
        (-(2**63) - 1, "3b 8000000000000000"),
        ("", "60"),
        ("é", "62 c3a9"),
        ("\U0001f600", "64 f09f9880"),
        ([], "80"),
        ((), "80"),
        ({}, "a0"),
        ([1, (2,), {"x": []}], "83 01 81 02 a1 6178 80"),
    ],
)
def test_pinned_bytes(value, hexstr):
    expected = bytes.fromhex("a1 61 61 " + hexstr)  # {"a": value}
    assert cbor2.dumps({"a": value}) == expected
    assert encode_json_map({"a": value}) == expected
    assert encode_json_frame({"a": value}) == len(expected).to_bytes(4, "big") + expected


def test_event_envelope():
    env = {
        "contract_version": "1.0",
        "event_id": "0b7e7f4e-3d0f-4a43-9a57-5c1d4d0e8a11",
        "run_id": "run-0123456789abcdef",
        "seq": 12345,
        "type": "item",
        "ts": "2026-12-07T16:00:00.123Z",
        "payload": {"item_type": "row", "data": {"i": 1, "name": "item-1", "price": 0.5}},
        "attempt": 1,
    }
    body = encode_json_map(env)
    assert body == cbor2.dumps(env)
    assert encode_json_frame(env) == struct.pack(">I", len(body)) + body
    assert same(decode_json_map(body), env)


def test_top_level_empty_map():
    assert encode_json_map({}) == b"\xa0" == cbor2.dumps({})
    assert encode_json_frame({}) == b"\x00\x00\x00\x01\xa0"


# ---------------------------------------------------------------------------
# 3. Header widths: string lengths, array lengths, map sizes, integers
# ---------------------------------------------------------------------------

SIZES = [0, 1, 23, 24, 255, 256, 65535, 65536]


@pytest.mark.parametrize("n", [*SIZES, 70_000])
def test_string_length_heads(n):
    s = "x" * n
    body = check({"s": s, s: 0})
    assert body == b"\xa2" + text("s") + head(3, n) + s.encode() + head(3, n) + s.encode() + b"\x00"


@pytest.mark.parametrize("n", [23, 24, 255, 256, 65535, 65536, 70_000])
def test_multibyte_string_length_heads(n):
    """The head counts UTF-8 bytes, not code points: 2-, 3- and 4-byte characters padded to n bytes."""
    for ch in ("é", "€", "\U0001f600"):
        size = len(ch.encode())
        s = ch * (n // size) + "a" * (n % size)
        assert len(s.encode()) == n
        assert check({"s": s}) == b"\xa1" + text("s") + head(3, n) + s.encode()


@pytest.mark.parametrize("n", SIZES)
def test_array_length_heads(n):
    for seq in ([0] * n, (0,) * n):
        assert check({"a": seq}) == b"\xa1" + text("a") + head(4, n) + b"\x00" * n


@pytest.mark.parametrize("n", SIZES)
def test_map_size_heads(n):
    inner = {f"k{i}": True for i in range(n)}
    items = b"".join(text(k) + b"\xf5" for k in inner)
    assert check({"m": inner}) == b"\xa1" + text("m") + head(5, n) + items
    assert check(inner) == head(5, n) + items  # the top-level map's head too


@pytest.mark.parametrize("edge", WIDTH_EDGES)
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_integer_heads(edge, delta):
    for n in (edge + delta, -1 - (edge + delta)):
        if not NEG_U64_MIN <= n <= U64_MAX:
            continue
        expected = head(0, n) if n >= 0 else head(1, -1 - n)
        assert check({"i": n}) == b"\xa1" + text("i") + expected


def test_output_crossing_the_local_buffer():
    """Bodies of every length either side of the encoder's on-stack buffer (2048 bytes, the length prefix
    included), so the move to the heap is covered at each offset, in a string and in a following head."""
    sizes = set()
    for n in range(1990, 2060):
        value = {"s": "y" * n, "t": ["é" * 3, 1.5, {"u": None}]}
        sizes.add(len(check(value)))
        check({"s": "y" * n})
    assert min(sizes) < 2040 and max(sizes) > 2060


def test_large_value_grows_the_buffer_many_times():
    value = {"rows": [{"i": i, "name": f"item-{i}", "price": i / 7, "tags": ("a", "b")} for i in range(20_000)]}
    check(value)


# ---------------------------------------------------------------------------
# 4. Outside the subset: None, and cbor2 decides (bytes or its error)
# ---------------------------------------------------------------------------


class IntE(enum.IntEnum):
    ONE = 1


class StrE(enum.StrEnum):
    A = "a"


class MyDict(dict):
    pass


class MyList(list):
    pass


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyTuple(tuple):
    __slots__ = ()


def reference(value):
    """cbor2.dumps(value), or the exception it raises."""
    try:
        return cbor2.dumps(value)
    except Exception as exc:
        return exc


OUTSIDE = {
    "dict subclass": MyDict(a=1),
    "OrderedDict": collections.OrderedDict(a=1),
    "defaultdict": collections.defaultdict(int, a=1),
    "list subclass": MyList([1]),
    "tuple subclass": MyTuple((1,)),
    "namedtuple": collections.namedtuple("P", "x y")(1, 2),
    "str subclass": MyStr("x"),
    "int subclass": MyInt(1),
    "float subclass": MyFloat(1.0),
    "IntEnum": IntE.ONE,
    "str Enum": StrE.A,
    "bytes": b"x",
    "empty bytes": b"",
    "bytearray": bytearray(b"x"),
    "memoryview": memoryview(b"x"),
    "set": {1},
    "frozenset": frozenset({1}),
    "Decimal": decimal.Decimal("1.5"),
    "Decimal NaN": decimal.Decimal("NaN"),
    "datetime": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    "date": datetime.date(2026, 1, 1),
    "UUID": uuid.UUID(int=1),
    "complex": 1 + 2j,
    "object": object(),
    "type": int,
    "Ellipsis": ...,
    "lone high surrogate": "\ud800",
    "lone low surrogate": "a\udfffb",
    "surrogate pair as two code points": "\ud83d\ude00",
    "2**64": 2**64,
    "-2**64 - 1": -(2**64) - 1,
    "2**100": 2**100,
    "-2**100": -(2**100),
    "cbor2.undefined": cbor2.undefined,
    "CBORTag": cbor2.CBORTag(1, 0),
    "CBORSimpleValue": cbor2.CBORSimpleValue(0),
}


@pytest.mark.parametrize("label", list(OUTSIDE))
def test_values_outside_the_subset(label):
    bad = OUTSIDE[label]
    for value in ({"a": bad}, {"a": [1, bad]}, {"a": {"b": (bad,)}}, {"x": 1, "y": [{"z": bad}], "w": 2}):
        assert encode_json_map(value) is None
        assert encode_json_frame(value) is None
        reference(value)  # cbor2 decides: its bytes or its error


def test_what_cbor2_does_with_declined_values():
    """The declines that matter for correctness, not only for speed: cbor2 writes something else."""
    assert cbor2.dumps({"a": 2**64})[3] == 0xC2  # tag 2 bignum
    assert cbor2.dumps({"a": -(2**64) - 1})[3] == 0xC3  # tag 3 bignum
    with pytest.raises(UnicodeEncodeError):
        cbor2.dumps({"a": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        cbor2.dumps({"\udfff": 1})


@pytest.mark.parametrize(
    "key", [1, -1, 1.5, True, None, b"k", ("a",), frozenset(), MyStr("k"), StrE.A, "\ud800", IntE.ONE]
)
def test_keys_outside_the_subset(key):
    for value in ({key: 1}, {"a": {key: 1}}, {"other": 1, key: 2}, {"a": [{"b": 1}, {key: 2}]}):
        assert encode_json_map(value) is None
        assert encode_json_frame(value) is None
        reference(value)


@pytest.mark.parametrize(
    "top",
    [None, True, 1, 1.5, "a", b"a", [], [{}], (), ({},), {1}, MyDict(), collections.OrderedDict(), object()],
)
def test_top_level_must_be_an_exact_dict(top):
    assert encode_json_map(top) is None
    assert encode_json_frame(top) is None
    reference(top)


def test_integer_range_edges():
    assert check({"a": U64_MAX}) == bytes.fromhex("a1 61 61 1b ffffffffffffffff")
    assert check({"a": NEG_U64_MIN}) == bytes.fromhex("a1 61 61 3b ffffffffffffffff")
    assert encode_json_map({"a": U64_MAX + 1}) is None
    assert encode_json_map({"a": NEG_U64_MIN - 1}) is None
    # the 64-bit signed edges, where the encoder switches from the C long long path to the wide one
    for n in (INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1):
        assert check({"a": n}) is not None


def nest(depth_of_innermost, kind):
    """Top-level map whose innermost (empty) container sits at the given depth."""
    wrap = {"map": lambda v: {"k": v}, "list": lambda v: [v], "tuple": lambda v: (v,)}[kind]
    value = {"map": {}, "list": [], "tuple": ()}[kind]
    for _ in range(depth_of_innermost - 1):
        value = wrap(value)
    return {"k": value}


@pytest.mark.parametrize("kind", ["map", "list", "tuple"])
def test_depth_limit(kind):
    assert _encode.MAX_DEPTH == MAX_DEPTH == 200
    ok = nest(MAX_DEPTH, kind)
    too_deep = nest(MAX_DEPTH + 1, kind)
    body = check(ok)
    assert body is not None
    assert decode_json_map(body) is not None  # the decoder's limit is the same ...
    assert encode_json_map(too_deep) is None
    assert encode_json_frame(too_deep) is None
    assert decode_json_map(cbor2.dumps(too_deep)) is None  # ... on both sides of it
    assert encode_json_map(nest(1000, kind)) is None


def test_depth_counts_containers_not_scalars():
    def chain(innermost):  # innermost sits at depth 200
        value = innermost
        for _ in range(MAX_DEPTH - 1):
            value = [value]
        return {"k": value}

    assert check(chain([1, "x", 2.5, None, True])) is not None  # scalars inside a depth-200 container
    for empty in ((), {}, []):
        assert check(chain([1, empty])) is None  # an empty container at depth 201 still counts


def test_deep_nesting_far_beyond_the_limit_does_not_touch_the_c_stack():
    value = []
    for _ in range(100_000):
        value = [value]
    assert encode_json_map({"k": value}) is None


def test_cycles_are_declined():
    d = {}
    d["self"] = d
    lst = []
    lst.append(lst)
    for value in (d, {"l": lst}, {"a": [d]}):
        assert encode_json_map(value) is None
        assert encode_json_frame(value) is None
        assert isinstance(reference(value), Exception)  # cbor2: cyclic data structure


def test_shared_but_acyclic_values_are_written_twice():
    shared = {"x": [1, 2]}
    value = {"a": shared, "b": shared, "c": [shared, shared]}
    assert check(value) is not None


# ---------------------------------------------------------------------------
# 5. Dict iteration order and layouts
# ---------------------------------------------------------------------------


def test_insertion_order_after_deletes_and_reinserts():
    d = {f"k{i}": i for i in range(50)}
    for i in range(0, 50, 3):
        del d[f"k{i}"]
    d["k0"] = "again"
    d["k3"] = "and again"
    assert check({"d": d}) is not None
    assert check(d) is not None


def test_instance_dict_split_table():
    class Obj:
        def __init__(self, a, b):
            self.a = a
            self.b = b

    first = Obj(1, 2)
    second = Obj(3, 4)
    second.c = 5
    del second.a
    second.a = 6  # now ordered b, c, a
    for obj in (first, second):
        assert type(vars(obj)) is dict
        assert check(vars(obj)) is not None
        assert check({"o": vars(obj)}) is not None


# ---------------------------------------------------------------------------
# 6. Never raises, never runs the objects' Python code
# ---------------------------------------------------------------------------

surrogates = st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3)
outside_scalars = st.one_of(
    st.binary(max_size=8),
    st.binary(max_size=8).map(bytearray),
    st.decimals(),
    st.datetimes(),
    st.dates(),
    st.uuids(),
    st.complex_numbers(),
    st.integers(min_value=U64_MAX + 1),
    st.integers(max_value=NEG_U64_MIN - 1),
    surrogates,
    st.tuples(st.text(max_size=3), surrogates, st.text(max_size=3)).map("".join),  # a surrogate among text
    st.sampled_from([IntE.ONE, StrE.A, MyStr("s"), MyInt(2), MyFloat(2.5), object(), cbor2.undefined, ..., int]),
    st.frozensets(st.integers(), max_size=3),
    st.sets(st.integers(), max_size=3),
)
hashables = st.one_of(texts, st.integers(), st.booleans(), st.none(), st.binary(max_size=4), st.floats(),
                      st.tuples(st.integers()), st.sampled_from([MyStr("k"), StrE.A, IntE.ONE]))  # fmt: skip


def mixed_containers(children):
    return st.one_of(
        containers(children),
        st.dictionaries(hashables, children, max_size=5),
        st.lists(children, max_size=4).map(MyList),
        st.dictionaries(texts, children, max_size=4).map(MyDict),
        st.dictionaries(texts, children, max_size=4).map(collections.OrderedDict),
        st.lists(children, max_size=4).map(MyTuple),
    )


anything = st.recursive(st.one_of(scalars, outside_scalars), mixed_containers, max_leaves=30)


@HYPO
@given(anything)
def test_anything_gives_bytes_or_none_as_the_oracle_says(value):
    check(value)  # never raises; bytes exactly when inside the subset, and then cbor2's bytes
    check({"v": value})
    check({"v": [value, {"w": (value,)}]})


class Poison:
    """Counts every special-method call the encoder (must not) make."""

    calls = 0

    def _touch(self, *args, **kwargs):
        type(self).calls += 1
        raise AssertionError("the encoder ran Python code")


class PoisonDict(dict):
    items = keys = values = __iter__ = __len__ = __getitem__ = Poison._touch


class PoisonList(list):
    __iter__ = __len__ = __getitem__ = Poison._touch


class PoisonStr(str):
    __str__ = __hash__ = __eq__ = __len__ = __iter__ = Poison._touch


class PoisonInt(int):
    __index__ = __int__ = __lt__ = __ge__ = __hash__ = Poison._touch


class PoisonFloat(float):
    __float__ = __repr__ = Poison._touch


class PoisonObject:
    __len__ = __iter__ = __index__ = __float__ = __str__ = __bytes__ = __getattr__ = Poison._touch


def test_no_python_code_runs_on_declined_objects():
    Poison.calls = 0
    poisons = [
        PoisonDict(a=1),
        PoisonList([1]),
        PoisonStr("s"),
        PoisonInt(1),
        PoisonInt(2**70),
        PoisonFloat(1.0),
        PoisonObject(),
    ]
    for p in poisons:
        for value in (p, {"a": p}, {"a": [{"b": p}]}):
            assert encode_json_map(value) is None
            assert encode_json_frame(value) is None
    assert Poison.calls == 0


def test_no_reference_leak_and_no_mutation():
    # objects made here, so nothing else in the process holds them
    items = [int("1234567"), "".join(["x", "y"]), int("18446744073709551615"), -int("18446744073709551616"),
             float("1.5"), {"k": ["v"]}, (None, True)]  # fmt: skip
    value = {"a": items, "b": "é" * 3000}
    before = [sys.getrefcount(x) for x in (value, items, *items)]
    snapshot = repr(value)
    for _ in range(1000):
        encode_json_map(value)
        encode_json_frame(value)
        encode_json_map({"a": items, "bad": b"x"})  # the decline path too
    assert [sys.getrefcount(x) for x in (value, items, *items)] == before
    assert repr(value) == snapshot


def test_heap_buffer_freed_on_every_path():
    """A value large enough to move the buffer to the heap, declined at its very end, many times over."""
    big = "z" * 50_000
    declined = {"a": big, "b": [1, 2, {"c": big}], "z": b"bytes at the end"}
    accepted = {"a": big, "b": [1, 2, {"c": big}]}
    for value in (declined, accepted):  # warm up caches and free lists
        encode_json_map(value)
        encode_json_frame(value)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(300):
            assert encode_json_map(declined) is None
            assert encode_json_frame(declined) is None
            assert encode_json_map(accepted) is not None
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - start < 50_000  # a leak would be >= 300 * 100 kB


# ---------------------------------------------------------------------------
# 6b. encode_event_frame: an envelope's frame without its map
# ---------------------------------------------------------------------------

ENVELOPE_KEYS = ("contract_version", "event_id", "run_id", "seq", "type", "ts", "payload", "attempt")


def envelope_map(args, lineage):
    d = dict(zip(ENVELOPE_KEYS, args, strict=True))
    d.update(lineage)
    return d


envelope_texts = st.one_of(texts, st.sampled_from(["1.0.0", "item", "2026-11-25T17:49:03.120Z", "r1"]))
envelope_args = st.tuples(
    envelope_texts,
    envelope_texts,
    envelope_texts,
    st.one_of(ints, st.booleans(), floats),
    envelope_texts,
    st.one_of(envelope_texts, st.none()),
    st.one_of(top_maps, json_values),
    st.one_of(ints, st.booleans()),
)
lineages = st.dictionaries(
    st.one_of(st.sampled_from(["job_id", "parent_run_id", "spawned_by_run_id", "depth", "seq", "ts"]), texts),
    st.one_of(texts, ints, st.booleans(), st.none(), floats),
    max_size=4,
)


@HYPO
@given(envelope_args, lineages)
def test_event_frame_is_the_frame_of_the_envelope_map(args, lineage):
    """Whatever it writes is encode_json_frame's frame of the map ``{envelope..., **lineage}``; it declines
    (None) at least wherever that does, and for lineage keys that are envelope keys or values other than
    text and integers."""
    expected = encode_json_frame(envelope_map(args, lineage))
    got = _encode.encode_event_frame(*args, lineage)
    if got is not None:
        assert got == expected
    elif expected is not None:  # declined where the map path writes: only for these reasons
        texts_ok = all(type(args[i]) is str for i in (0, 1, 2, 4, 5))
        ints_ok = type(args[3]) is int and type(args[7]) is int
        lineage_ok = not set(lineage) & set(ENVELOPE_KEYS) and all(type(v) in (str, int) for v in lineage.values())
        assert not (texts_ok and ints_ok and type(args[6]) is dict and lineage_ok)


def test_event_frame_of_the_common_envelope_and_its_edges():
    payload = {"item_type": "row", "data": {"i": 1, "name": "x", "price": 0.5}}
    args = ("1.0.0", "6f1c2a3e-1b2c-4d5e-8f90-123456789abc", "r1", 3, "item", "2026-11-25T17:49:03.120Z", payload, 1)
    for lineage in ({}, {"job_id": "j", "parent_run_id": "p", "spawned_by_run_id": "s", "depth": 2}):
        frame = _encode.encode_event_frame(*args, lineage)
        assert frame == encode_json_frame(envelope_map(args, lineage))
        assert frame[4:] == cbor2.dumps(envelope_map(args, lineage))
    # the payload sits at depth 1: its deepest container may be at depth 200, counted from the envelope
    ok, too_deep = nest(MAX_DEPTH - 1, "list")["k"], nest(MAX_DEPTH, "list")["k"]
    assert _encode.encode_event_frame(*args[:6], {"k": ok}, 1, {}) == encode_json_frame(
        envelope_map((*args[:6], {"k": ok}, 1), {})
    )
    assert encode_json_frame(envelope_map((*args[:6], {"k": too_deep}, 1), {})) is None
    assert _encode.encode_event_frame(*args[:6], {"k": too_deep}, 1, {}) is None
    assert _encode.encode_event_frame(*args, {"seq": 9}) is None  # the map would keep seq's place
    assert _encode.encode_event_frame(*args[:6], collections.OrderedDict(payload), 1, {}) is None
    assert _encode.encode_event_frame(*args, collections.OrderedDict()) is None
    assert _encode.encode_event_frame(*args[:3], True, *args[4:], {}) is None  # bool is not int
    assert _encode.encode_event_frame(*args[:3], 2**64, *args[4:], {}) is None  # a bignum: cbor2 decides


# ---------------------------------------------------------------------------
# 7. The package surface
# ---------------------------------------------------------------------------


def test_exports():
    assert len(set(quarry_speedups.__all__)) == len(quarry_speedups.__all__)  # ruff (RUF022) keeps the order
    assert {"encode_json_map", "encode_json_frame", "encode_event_frame"} <= set(quarry_speedups.__all__)
    for name in quarry_speedups.__all__:
        assert hasattr(quarry_speedups, name)
    assert encode_json_map is _encode.encode_json_map
    assert encode_json_frame is _encode.encode_json_frame
    assert quarry_speedups.encode_event_frame is _encode.encode_event_frame


# ---------------------------------------------------------------------------
# json_array_split: a compact JSON array's text cut into its elements' texts
# ---------------------------------------------------------------------------

_json_texts = st.text(alphabet=st.sampled_from([*'ab,[]{}":\\ü\n', "\U0001f600"]), max_size=6)
_json_trees = st.recursive(
    st.one_of(_json_texts, st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none()),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_json_texts, kids, max_size=3),
    max_leaves=15,
)


def _split(values):
    import json

    text = json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()
    return quarry_speedups.json_array_split(text, len(values))


@HYPO
@given(st.lists(_json_trees, max_size=8))
def test_json_array_split_gives_each_elements_text(values):
    """Commas, brackets, braces, quotes and backslashes inside strings and nested containers never split."""
    import json

    offsets, data = _split(values)
    at = struct.unpack(f"={len(values) + 1}i", offsets)
    texts = [data[at[i] : at[i + 1]].decode() for i in range(len(values))]
    assert texts == [json.dumps(v, separators=(",", ":"), ensure_ascii=False) for v in values]
    assert at[0] == 0 and at[-1] == len(data)


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"[1,2]", 1),  # more elements than said
        (b"[1,2]", 3),  # fewer
        (b"[]", 1),
        (b"[1]", 0),
        (b'["a,b]', 1),  # a string that never ends
        (b'["a\\"]', 1),  # its closing quote escaped
        (b"[[1,2]", 1),  # a bracket left open
        (b"[1]]", 1),
        (b"{1}", 1),  # not an array
        (b"[1", 1),
        (b"", 0),
        (b"[", 0),
    ],
)
def test_json_array_split_declines_what_is_not_such_an_array(data, count):
    assert quarry_speedups.json_array_split(data, count) is None


@HYPO_SMALL
@given(st.binary(max_size=40), st.integers(-1, 6))
def test_json_array_split_never_fails_on_any_bytes(data, count):
    got = quarry_speedups.json_array_split(b"[" + data + b"]", count)
    if got is not None:
        offsets, values = got
        at = struct.unpack(f"={count + 1}i", offsets)
        assert list(at) == sorted(at) and at[0] == 0 and at[-1] == len(values) == len(data) - max(count - 1, 0)


def test_json_array_split_takes_only_bytes():
    with pytest.raises(TypeError, match="bytes"):
        quarry_speedups.json_array_split(bytearray(b"[]"), 0)
    assert quarry_speedups.json_array_split(b"[]", 0) == (b"\0\0\0\0", b"")
