# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A CBOR (RFC 8949) decoder for the JSON-model subset Quarry's event frames are made of.

``decode_json_map(body)`` decodes ``body`` only when it is one CBOR data item whose value is a JSON-like
document, and returns ``None`` for anything else; the caller then decodes with ``cbor2.loads``, which gives
the reference value or the reference error. Accepted:

* the top level is a definite-length map, and nothing follows it;
* every map has text-string keys only;
* every value is a text string (strict UTF-8), an integer in the signed 64-bit range, a finite float (half,
  single or double precision), false / true / null, or a definite-length array or map of the same;
* containers nest at most ``MAX_DEPTH`` levels below the top-level map.

Whenever a dict is returned it equals ``cbor2.loads(body)`` with the same Python types at every level (bool
is not int, floats stay floats), and it lies inside the JSON data model of CONTRACT_IPC §2. Non-shortest
argument encodings are valid CBOR and accepted, as cbor2 does; a duplicate key keeps the later value, as cbor2
does. The decoder reads the ``bytes`` buffer through a bounds-checked cursor and never raises for bad input.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memcmp
from libc.math cimport ldexp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.dict cimport PyDict_GetItem, PyDict_Size
from cpython.object cimport Py_TYPE, PyTypeObject
from cpython.ref cimport Py_INCREF, PyObject
from cpython.unicode cimport PyUnicode_New, PyUnicode_DATA, PyUnicode_GET_LENGTH

cdef extern from "Python.h":
    # Declared here (instead of cimporting) so the pointer is ``const``.
    # Cython raises automatically when this returns NULL.
    str PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    # ``object.__new__``'s C function, called without ``type_call``'s layers (see ``EventDecoder._build``)
    PyTypeObject PyBaseObject_Type
    # takes a built event out of the cyclic collector's lists (see ``EventDecoder._build``)
    void PyObject_GC_UnTrack(void *op)
    bint PyUnicode_IS_COMPACT_ASCII(object op)

cdef extern from "structmember.h":
    # a slot's member descriptor: where in the instance the slot's pointer lives (``EventDecoder``)
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    enum:
        T_OBJECT_EX
        READONLY

cdef extern from "Python.h":
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member


cdef enum:
    # Maximum container nesting depth accepted (top-level map is depth 0).
    _MAX_DEPTH = 200
    # Number of slots in the key cache (must be a power of two) and the
    # longest key, in bytes, that is cached.
    KEY_CACHE_SIZE = 1024
    KEY_CACHE_MAX_LEN = 32
    # Longest array allocated whole before its elements are decoded.
    ARRAY_PRESIZE_MAX = 4096

#: containers may nest this many levels below the top-level map
MAX_DEPTH = _MAX_DEPTH

# Unique sentinel returned by the internal decoders when the input is outside
# the JSON-model subset (or malformed).  It never escapes this module.
cdef object _INVALID = object()


# ---------------------------------------------------------------------------
# Key cache
#
# A fixed-size, direct-mapped cache of ASCII map-key strings.  Frame bodies
# tend to repeat the same handful of keys, so reusing the ``str`` objects
# saves an allocation and, more importantly, re-hashing on dict insertion
# (``str`` caches its hash).  The cache is a plain list of KEY_CACHE_SIZE
# slots; a new key simply replaces whatever occupied its slot, so its memory
# use is bounded regardless of the input.  Entries are always compact ASCII
# strings, so their character data can be compared byte-wise with memcmp.
# ---------------------------------------------------------------------------

cdef list _key_cache = [None] * KEY_CACHE_SIZE


cdef struct Cursor:
    const unsigned char *pos     # next unread byte
    const unsigned char *end     # one past the last byte of the buffer


cdef struct Expect:
    # what ``EventDecoder.take_items`` requires of the next event besides being the common event frame
    # (borrowed references, alive for the call)
    PyObject *seq        # the seq it must have
    PyObject *run_id
    PyObject *attempt
    PyObject *lineage    # None: no lineage value at all; else (job_id, parent_run_id, spawned_by_run_id, depth)


# ---------------------------------------------------------------------------
# Low-level readers
# ---------------------------------------------------------------------------

cdef inline bint _read_argument(Cursor *cur, unsigned int info, uint64_t *out) noexcept:
    """Read the argument of a data item whose additional info is *info*.

    Returns False for truncated input, reserved values (28-30) and the
    indefinite-length marker (31), none of which are accepted here.
    Non-shortest encodings are valid CBOR and are accepted.
    """
    cdef const unsigned char *p = cur.pos
    cdef Py_ssize_t avail = cur.end - p
    if info < 24:
        out[0] = info
        return True
    if info == 24:
        if avail < 1:
            return False
        out[0] = p[0]
        cur.pos = p + 1
        return True
    if info == 25:
        if avail < 2:
            return False
        out[0] = (<uint64_t>p[0] << 8) | p[1]
        cur.pos = p + 2
        return True
    if info == 26:
        if avail < 4:
            return False
        out[0] = ((<uint64_t>p[0] << 24) | (<uint64_t>p[1] << 16) |
                  (<uint64_t>p[2] << 8) | p[3])
        cur.pos = p + 4
        return True
    if info == 27:
        if avail < 8:
            return False
        out[0] = ((<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) |
                  (<uint64_t>p[2] << 40) | (<uint64_t>p[3] << 32) |
                  (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16) |
                  (<uint64_t>p[6] << 8) | p[7])
        cur.pos = p + 8
        return True
    return False    # 28-30 reserved, 31 indefinite length / break


cdef inline bint _is_ascii(const unsigned char *p, Py_ssize_t n) noexcept:
    """True if all *n* bytes at *p* are < 0x80 (checks 8 bytes at a time)."""
    cdef uint64_t word
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&word, p + i, 8)
        if word & 0x8080808080808080ULL:
            return False
        i += 8
    while i < n:
        if p[i] & 0x80:
            return False
        i += 1
    return True


cdef inline object _make_ascii(const unsigned char *p, Py_ssize_t n):
    """Build a str from *n* bytes already known to be ASCII."""
    cdef object s = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(s), p, n)
    return s


cdef object _make_text(const unsigned char *p, Py_ssize_t n):
    """Decode *n* bytes of strict UTF-8; return _INVALID if they are not."""
    if _is_ascii(p, n):
        return _make_ascii(p, n)
    try:
        # Strict decoding, exactly like cbor2: rejects overlong forms,
        # encoded surrogates, code points above U+10FFFF and truncation.
        return PyUnicode_DecodeUTF8(<const char *>p, n, NULL)
    except UnicodeDecodeError:
        return _INVALID


cdef inline Py_ssize_t _key_slot(const unsigned char *p, Py_ssize_t n) noexcept:
    """The key cache slot of the *n* key bytes at *p* (FNV-1a)."""
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return <Py_ssize_t>(h & <uint64_t>(KEY_CACHE_SIZE - 1))


cdef object _read_key(Cursor *cur):
    """Read one map key; anything but a definite-length text string is invalid."""
    cdef const unsigned char *p
    cdef uint64_t length
    cdef Py_ssize_t n, slot
    cdef unsigned int initial
    cdef object s

    if cur.pos >= cur.end:
        return _INVALID
    initial = cur.pos[0]
    cur.pos += 1
    if (initial >> 5) != 3:
        return _INVALID
    if not _read_argument(cur, initial & 0x1f, &length):
        return _INVALID
    if length > <uint64_t>(cur.end - cur.pos):
        return _INVALID
    n = <Py_ssize_t>length
    p = cur.pos
    cur.pos += n

    if n > KEY_CACHE_MAX_LEN or not _is_ascii(p, n):
        return _make_text(p, n)

    slot = _key_slot(p, n)
    s = _key_cache[slot]
    if (s is not None and PyUnicode_GET_LENGTH(s) == n
            and memcmp(PyUnicode_DATA(s), p, n) == 0):
        return s
    s = _make_ascii(p, n)
    _key_cache[slot] = s
    return s


cdef inline double _half_to_double(uint64_t bits) noexcept:
    """IEEE 754 binary16 -> double (exact).  Caller rejects exponent 31."""
    cdef unsigned int exponent = (bits >> 10) & 0x1f
    cdef unsigned int mantissa = bits & 0x3ff
    cdef double value
    if exponent == 0:
        value = ldexp(<double>mantissa, -24)                 # zero / subnormal
    else:
        value = ldexp(<double>(mantissa | 0x400), <int>exponent - 25)
    return -value if bits & 0x8000 else value


# ---------------------------------------------------------------------------
# Recursive decoders
# ---------------------------------------------------------------------------

cdef object _decode_value(Cursor *cur, int depth):
    """Decode one value found inside a container at nesting level *depth*."""
    cdef uint64_t arg
    cdef unsigned int initial, major, info
    cdef Py_ssize_t n
    cdef uint32_t bits32
    cdef float f32
    cdef double f64

    if cur.pos >= cur.end:
        return _INVALID
    initial = cur.pos[0]
    cur.pos += 1
    major = initial >> 5
    info = initial & 0x1f

    if major == 7:
        # Simple values and floats.  Only false/true/null and finite floats
        # are accepted; undefined (0xf7), other simple values (0xe0-0xf3,
        # 0xf8), reserved 0xfc-0xfe and break (0xff) are all rejected.
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info < 25 or info > 27:
            return _INVALID
        if not _read_argument(cur, info, &arg):
            return _INVALID
        if info == 25:
            if (arg & 0x7c00) == 0x7c00:                     # inf / NaN
                return _INVALID
            return PyFloat_FromDouble(_half_to_double(arg))
        if info == 26:
            if (arg & 0x7f800000) == 0x7f800000:             # inf / NaN
                return _INVALID
            bits32 = <uint32_t>arg
            memcpy(&f32, &bits32, 4)
            return PyFloat_FromDouble(<double>f32)           # exact widening
        if (arg & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL:
            return _INVALID                                  # inf / NaN
        memcpy(&f64, &arg, 8)
        return PyFloat_FromDouble(f64)

    # Every other major type starts with an argument; indefinite lengths
    # (info 31) and reserved info values (28-30) are rejected here.
    if not _read_argument(cur, info, &arg):
        return _INVALID

    if major == 0:                                           # unsigned int
        if arg > <uint64_t>0x7fffffffffffffffULL:
            return _INVALID
        return PyLong_FromLongLong(<int64_t>arg)
    if major == 1:                                           # negative int: -1 - arg
        if arg > <uint64_t>0x7fffffffffffffffULL:
            return _INVALID
        return PyLong_FromLongLong(-1 - <int64_t>arg)
    if major == 3:                                           # text string
        if arg > <uint64_t>(cur.end - cur.pos):
            return _INVALID
        n = <Py_ssize_t>arg
        cur.pos += n
        return _make_text(cur.pos - n, n)
    if major == 4:
        if depth >= _MAX_DEPTH:
            return _INVALID
        return _decode_array(cur, arg, depth + 1)
    if major == 5:
        if depth >= _MAX_DEPTH:
            return _INVALID
        return _decode_map(cur, arg, depth + 1)
    return _INVALID                                          # byte string (2), tag (6)


cdef object _decode_array(Cursor *cur, uint64_t count, int depth):
    # Each element needs at least one byte: reject impossible counts before
    # allocating, so hostile lengths cannot trigger huge allocations.
    if count > <uint64_t>(cur.end - cur.pos):
        return _INVALID
    cdef Py_ssize_t n = <Py_ssize_t>count
    cdef Py_ssize_t i
    cdef object item
    cdef list result
    if n > ARRAY_PRESIZE_MAX:
        # A count the bytes could still hold, but only trusted as far as the
        # elements decode: the list grows with them (a one-byte-per-element
        # claim would otherwise allocate 8 bytes per input byte up front).
        result = []
        for i in range(n):
            item = _decode_value(cur, depth)
            if item is _INVALID:
                return _INVALID
            result.append(item)
        return result
    # PyList_New leaves the slots NULL; a partially filled list is still
    # safe to discard (list deallocation skips NULL slots).
    result = PyList_New(n)
    for i in range(n):
        item = _decode_value(cur, depth)
        if item is _INVALID:
            return _INVALID
        Py_INCREF(item)                  # PyList_SET_ITEM steals a reference
        PyList_SET_ITEM(result, i, item)
    return result


cdef object _decode_map(Cursor *cur, uint64_t count, int depth):
    # Each key/value pair needs at least two bytes.
    if count > <uint64_t>((cur.end - cur.pos) // 2):
        return _INVALID
    cdef Py_ssize_t n = <Py_ssize_t>count
    cdef Py_ssize_t i
    cdef object key, value
    cdef dict result = {}
    for i in range(n):
        key = _read_key(cur)
        if key is _INVALID:
            return _INVALID
        value = _decode_value(cur, depth)
        if value is _INVALID:
            return _INVALID
        # Duplicate keys: the later value wins (and the key keeps its first
        # position), which is exactly what cbor2.loads does by default.
        result[key] = value
    return result


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------

def decode_json_map(body):
    """Decode *body* if it is a JSON-model CBOR map, else return ``None``.

    Returns a ``dict`` equal (with identical types) to ``cbor2.loads(body)``
    or ``None`` when the input is outside the supported subset, malformed,
    truncated, or followed by trailing bytes (cbor2 silently ignores trailing
    bytes; we decline so the caller's fallback decides).  Non-``bytes``
    arguments also yield ``None``.
    """
    if not isinstance(body, bytes):
        return None
    cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
    cdef Cursor cur
    cur.pos = <const unsigned char *>PyBytes_AS_STRING(body)
    cur.end = cur.pos + size
    if size == 0:
        return None

    cdef unsigned int initial = cur.pos[0]
    cdef uint64_t count
    cur.pos += 1
    if (initial >> 5) != 5:                  # top level must be a map
        return None
    if not _read_argument(&cur, initial & 0x1f, &count):
        return None                          # includes indefinite map 0xbf
    result = _decode_map(&cur, count, 0)
    if result is _INVALID or cur.pos != cur.end:
        return None
    return result


# ---------------------------------------------------------------------------
# Event frames
#
# The runtime's common frame is an event envelope: after decoding, it checks
# a dozen keys' types and builds its (frozen, slotted) ``Event``. Done in
# Python that costs several times the decoding itself, so ``EventDecoder``
# does the common case here: the caller hands over the class and the rules'
# moving parts (the accepted contract version and the last canonical ``ts``,
# each a one-element list the caller keeps current, the set of event types
# and the Python check of a ``ts`` it has not seen), and anything outside the
# common case is handed back as the decoded map for the caller's general
# path, which then finds the rule that fails and its message.
# ---------------------------------------------------------------------------

# the envelope's keys (interned: decoded keys come from the key cache, so a
# lookup usually matches by identity)
cdef str K_CV = "contract_version"
cdef str K_EVENT_ID = "event_id"
cdef str K_RUN_ID = "run_id"
cdef str K_SEQ = "seq"
cdef str K_TYPE = "type"
cdef str K_TS = "ts"
cdef str K_PAYLOAD = "payload"
cdef str K_ATTEMPT = "attempt"
cdef str K_JOB_ID = "job_id"
cdef str K_PARENT = "parent_run_id"
cdef str K_SPAWNED = "spawned_by_run_id"
cdef str K_DEPTH = "depth"
cdef str K_ITEM = "item"
cdef str K_ITEM_TYPE = "item_type"
cdef str K_DATA = "data"

# each envelope key's place in ``EventDecoder._direct``: the eight every event has, then the lineage keys
cdef tuple _ENVELOPE_KEYS = (
    K_CV, K_EVENT_ID, K_RUN_ID, K_SEQ, K_TYPE, K_TS, K_PAYLOAD, K_ATTEMPT, K_JOB_ID, K_PARENT, K_SPAWNED, K_DEPTH,
)
cdef dict _SLOT_OF = {key: i for i, key in enumerate(_ENVELOPE_KEYS)}
# the same keys as pointers: ``_direct`` finds a key's place by identity first
cdef PyObject *_ENVELOPE_KEY_PTRS[12]


cdef void _seed_key_cache():
    """Put the envelope's and the item payload's keys in the key cache, so that ``_read_key`` returns these
    very objects and ``_direct`` finds an envelope key's place by identity (a later key taking a seeded key's
    slot only sends that key to the dict lookup again)."""
    cdef bytes raw
    cdef Py_ssize_t i
    for i in range(12):
        _ENVELOPE_KEY_PTRS[i] = <PyObject *>_ENVELOPE_KEYS[i]
    for key in (*_ENVELOPE_KEYS, K_ITEM_TYPE, K_DATA):
        raw = (<str>key).encode("ascii")
        _key_cache[_key_slot(<const unsigned char *>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))] = key


_seed_key_cache()


cdef inline int _envelope_place(object key):
    """The place of ``key`` among the envelope keys, -1 when it is none of them."""
    cdef PyObject *k = <PyObject *>key
    cdef int i
    cdef PyObject *found
    for i in range(12):
        if _ENVELOPE_KEY_PTRS[i] == k:
            return i
    found = PyDict_GetItem(_SLOT_OF, key)
    if found is NULL:
        return -1
    return <int><object>found

#: the attributes an event has, in the order ``EventDecoder`` sets them
EVENT_SLOTS = (
    "event_id", "run_id", "seq", "type", "ts", "payload", "attempt", "contract_version",
    "job_id", "parent_run_id", "spawned_by_run_id", "depth", "_wire_size", "_payload_valid",
)
cdef Py_ssize_t N_SLOTS = 14


cdef inline object _get(dict d, str key):
    """``d.get(key)`` (borrowed lookups; keys are exact ``str``, so no Python code runs)."""
    cdef PyObject *p = PyDict_GetItem(d, key)
    if p is NULL:
        return None
    return <object>p


cdef inline bint _text(object v) noexcept:
    return type(v) is str and len(<str>v) > 0


cdef inline bint _positive(object v):
    # only int64 values leave the decoder, so the comparison cannot overflow
    return type(v) is int and v >= 1


cdef tuple _NO_ARGS = ()

#: the envelope places whose text is usually the same from one event to the next (contract_version, run_id,
#: type, ts and the lineage texts), as bits of ``_direct``'s place index
cdef unsigned int _REPEATED_TEXT = (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 8) | (1u << 9) | (1u << 10)


cdef object _same_text(Cursor *cur, object last):
    """``last`` (an ASCII ``str``) when the value at the cursor is a definite-length text string with exactly its
    bytes, the cursor then moved past it (what ``_decode_value`` would have read, as the equal object); ``None``
    otherwise, the cursor left where it was."""
    cdef Cursor probe = cur[0]
    cdef uint64_t length
    cdef unsigned int initial
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(last)
    if probe.pos >= probe.end:
        return None
    initial = probe.pos[0]
    probe.pos += 1
    if (initial >> 5) != 3 or not _read_argument(&probe, initial & 0x1f, &length):
        return None
    if length != <uint64_t>n or n > probe.end - probe.pos or memcmp(PyUnicode_DATA(last), probe.pos, n) != 0:
        return None
    cur.pos = probe.pos + n
    return last


cdef inline void _store(char *base, Py_ssize_t offset, object value) noexcept:
    """Store ``value`` in the empty slot at ``offset`` of a new instance (the slot takes a reference)."""
    Py_INCREF(value)
    (<PyObject **>(base + offset))[0] = <PyObject *>value


cdef class EventDecoder:
    """``decoder(body)``: an event built from ``body`` when it is the common event frame, the decoded map when
    it is another map inside the JSON data model, ``None`` when it is outside it (as ``decode_json_map``).

    The common event frame: exactly the eight envelope keys plus any lineage key that holds a value;
    ``contract_version`` equal to ``version_cell[0]``; ``type`` in ``event_types``; ``event_id``, ``run_id``
    and any ``job_id`` / ``parent_run_id`` / ``spawned_by_run_id`` non-empty text; ``seq``, ``attempt`` and
    any ``depth`` integers ≥ 1; ``payload`` a map; ``ts`` text equal to ``ts_cell[0]`` or one for which
    ``is_canonical_ts(ts)`` is true. The event gets the map's values (the payload is the decoded dict
    itself, which nothing else references), ``_wire_size = len(body)`` and ``_payload_valid`` true for an
    ``item`` whose ``item_type`` is non-empty text and whose ``data`` is a map (the whole frame being inside
    the JSON data model, its payload then passes the item rules).

    ``event_cls`` must be a slotted class with the attributes :data:`EVENT_SLOTS` (writable object slots);
    each new instance comes from ``object.__new__`` and its slots are filled as their descriptors would fill
    them (straight at their offsets when the class has no ``__new__`` of its own), so a frozen class's
    ``__setattr__`` and its ``__init__`` are bypassed; such an instance is also left untracked by the cyclic
    garbage collector (it can't be part of a cycle). A text at an envelope place that repeats (contract version,
    run id, type, ``ts``, lineage) with the previous event's bytes is that event's very object. :meth:`event_at` reads a length-prefixed frame in place; ``max_body`` is the
    longest body it takes (the contract's limit: a longer one is left to the caller, which reports it).
    """

    cdef type _cls
    cdef object _new
    cdef bint _plain_new  # the class takes object.__new__ as is: _build calls its C function directly
    cdef tuple _setters
    cdef Py_ssize_t _offsets[14]  # where each slot's pointer lives in an instance (EVENT_SLOTS order)
    cdef list _version_cell
    cdef list _ts_cell
    cdef object _is_canonical_ts
    cdef frozenset _types
    cdef Py_ssize_t _max_body
    cdef list _texts  # per envelope place in _REPEATED_TEXT: the last ASCII text read there (else None)
    cdef bint _last_valid  # _payload_valid of the event _build made last

    def __init__(self, event_cls, *, list version_cell, list ts_cell, is_canonical_ts, frozenset event_types,
                 Py_ssize_t max_body):
        if not isinstance(event_cls, type):
            raise TypeError(f"event_cls must be a class, got {type(event_cls).__name__}")
        setters = []
        cdef PyMemberDef *member
        for i, name in enumerate(EVENT_SLOTS):
            descr = event_cls.__dict__.get(name)
            if descr is None or type(descr).__name__ != "member_descriptor":
                raise TypeError(f"{event_cls.__name__} has no slot {name!r} (a slotted class is needed)")
            member = (<PyMemberDescrObject *><PyObject *>descr).d_member
            if member.type != T_OBJECT_EX or member.flags & READONLY:
                raise TypeError(f"{event_cls.__name__}.{name} is not a writable object slot")
            self._offsets[i] = member.offset
            setters.append(descr)
        if len(version_cell) != 1 or len(ts_cell) != 1:
            raise ValueError("version_cell and ts_cell hold exactly one value each")
        self._cls = event_cls
        self._new = object.__new__
        self._plain_new = event_cls.__new__ is object.__new__ and (<PyTypeObject *>event_cls).tp_new == (
            PyBaseObject_Type.tp_new
        )
        self._setters = tuple(setters)
        self._version_cell = version_cell
        self._ts_cell = ts_cell
        self._is_canonical_ts = is_canonical_ts
        self._types = event_types
        if max_body < 1:
            raise ValueError(f"max_body must be at least 1, got {max_body}")
        self._max_body = max_body
        self._texts = [None] * 12

    def __call__(self, body):
        if type(body) is bytes:
            event = self._direct(<const unsigned char *>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
            if event is not None:
                return event
        d = decode_json_map(body)  # None for anything but bytes
        if d is None:
            return None
        event = self._from_map(<dict>d, PyBytes_GET_SIZE(body))
        return d if event is None else event

    def event_at(self, bytes buf not None, Py_ssize_t pos):
        """The event of the frame whose 4-byte big-endian length prefix starts at ``pos`` in ``buf``, read in
        place (no copy of the body), when the whole frame is there, its length is 1 to ``max_body`` and its body
        is the common event frame; ``None`` otherwise (then nothing is decided: the caller cuts the body out and
        decodes it the general way, which sees the same bytes). The frame ends at ``pos + 4 +
        event._wire_size``."""
        cdef Py_ssize_t n = self._body_length(buf, pos)
        if n < 0:
            return None
        return self._direct(<const unsigned char *>PyBytes_AS_STRING(buf) + pos + 4, n)

    def take_items(self, bytes buf not None, Py_ssize_t pos, list out not None, Py_ssize_t limit, last_seq,
                   run_id, attempt, lineage):
        """Append to ``out`` the events of the frames from ``pos`` on, in place as :meth:`event_at` reads them,
        while ``len(out) < limit`` and each is the common item of this run (what the runtime's
        ``Ingestor._check_event`` takes in one condition): an ``item`` whose payload is known valid, ``seq``
        one more than the one before (the first: ``last_seq + 1``), this ``run_id`` and ``attempt``, and this
        ``lineage`` (``None``: no lineage value at all; else ``(job_id, parent_run_id, spawned_by_run_id,
        depth)`` equal to it). Returns the position after the last frame taken (``pos`` when none); the frame
        that stopped it is not consumed, so the caller reads and checks that one the general way."""
        cdef Py_ssize_t n
        cdef Expect expect
        cdef object seq = last_seq + 1
        expect.run_id = <PyObject *>run_id
        expect.attempt = <PyObject *>attempt
        expect.lineage = <PyObject *>lineage
        while PyList_GET_SIZE(out) < limit:
            n = self._body_length(buf, pos)
            if n < 0:
                break
            expect.seq = <PyObject *>seq
            event = self._direct(<const unsigned char *>PyBytes_AS_STRING(buf) + pos + 4, n, &expect)
            if event is None or not self._last_valid:
                break
            out.append(event)
            pos += 4 + n
            seq = seq + 1
        return pos

    cdef inline Py_ssize_t _body_length(self, bytes buf, Py_ssize_t pos):
        """The body length of the frame whose 4-byte big-endian length prefix starts at ``pos`` in ``buf`` when
        the whole frame is there and the length is 1 to ``max_body``; -1 otherwise."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(buf)
        cdef const unsigned char *p
        cdef Py_ssize_t n
        if pos < 0 or size - pos < 4:
            return -1
        p = <const unsigned char *>PyBytes_AS_STRING(buf) + pos
        n = <Py_ssize_t>((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3])
        if n == 0 or n > self._max_body or n > size - pos - 4:
            return -1
        return n

    cdef object _direct(self, const unsigned char *start, Py_ssize_t size, Expect *expect=NULL):
        """The common event frame straight from its ``size`` bytes at ``start``, without the intermediate map;
        ``None`` whenever the map has a key that is not an envelope key, a key twice, a lineage key holding null
        or anything the map path might judge differently (then that path decides), and, with ``expect``, when
        its seq, run id, attempt or lineage differ from those expected (before the event is built)."""
        cdef Cursor cur
        cdef uint64_t count
        cdef unsigned int initial
        cdef Py_ssize_t i
        cdef int index
        cdef unsigned int seen = 0
        if size == 0:
            return None
        cur.pos = start
        cur.end = start + size
        initial = cur.pos[0]
        cur.pos += 1
        if (initial >> 5) != 5 or not _read_argument(&cur, initial & 0x1f, &count):
            return None
        if count < 8 or count > 12:
            return None
        values = [None] * 12
        for i in range(<Py_ssize_t>count):
            # Quarry's executor writes the envelope keys in their place order: the i-th key is usually the i-th
            # of them, taken by comparing its bytes (no hashing, no cache lookup); any other goes the usual way
            key = _same_text(&cur, <object>_ENVELOPE_KEY_PTRS[i])
            if key is None:
                key = _read_key(&cur)
            if key is _INVALID:
                return None
            index = _envelope_place(key)
            if index < 0:
                return None                  # not an envelope key
            if seen & (1u << index):
                return None                  # a key twice: the map keeps the later value
            seen |= 1u << index
            if _REPEATED_TEXT & (1u << index):
                # the same text as the last event's is that very object: nothing to allocate, decode or free
                last = <object>PyList_GET_ITEM(self._texts, index)
                value = None if last is None else _same_text(&cur, last)
                if value is None:
                    value = _decode_value(&cur, 0)
                    if type(value) is str and PyUnicode_IS_COMPACT_ASCII(value):
                        self._texts[index] = value
            else:
                value = _decode_value(&cur, 0)
            if value is _INVALID or (index >= 8 and value is None):
                return None
            values[index] = value
        if cur.pos != cur.end or (seen & 0xff) != 0xff:
            return None
        if expect is not NULL and not (
            values[3] == <object>expect.seq
            and values[2] == <object>expect.run_id
            and values[7] == <object>expect.attempt
            and (
                values[8] is None and values[9] is None and values[10] is None and values[11] is None
                if <object>expect.lineage is None
                else (values[8], values[9], values[10], values[11]) == <object>expect.lineage
            )
        ):
            return None
        return self._build(values[0], values[1], values[2], values[3], values[4], values[5], values[6],
                           values[7], values[8], values[9], values[10], values[11], size)

    cdef object _from_map(self, dict d, Py_ssize_t size):
        cdef Py_ssize_t keys = 8
        cdef object job_id = _get(d, K_JOB_ID)
        cdef object parent = _get(d, K_PARENT)
        cdef object spawned = _get(d, K_SPAWNED)
        cdef object depth = _get(d, K_DEPTH)
        keys += (job_id is not None) + (parent is not None) + (spawned is not None) + (depth is not None)
        if PyDict_Size(d) != keys:
            return None  # another key, or a lineage key holding null: the general path decides
        return self._build(_get(d, K_CV), _get(d, K_EVENT_ID), _get(d, K_RUN_ID), _get(d, K_SEQ), _get(d, K_TYPE),
                           _get(d, K_TS), _get(d, K_PAYLOAD), _get(d, K_ATTEMPT), job_id, parent, spawned, depth,
                           size)

    cdef object _build(self, object cv, object event_id, object run_id, object seq, object etype, object ts,
                       object payload, object attempt, object job_id, object parent, object spawned,
                       object depth, Py_ssize_t size):
        """The checks of ``fast_event`` on the envelope's values (``None``: absent or null), then the event."""
        cdef object want = self._version_cell[0]
        if type(cv) is not str or not (cv is want or cv == want):
            return None
        if type(etype) is not str or etype not in self._types:
            return None
        if not (_text(event_id) and _text(run_id) and _positive(seq) and type(payload) is dict
                and _positive(attempt)):
            return None
        if type(ts) is not str:
            return None
        cdef object last = self._ts_cell[0]
        if not (ts is last or ts == last) and not self._is_canonical_ts(ts):
            return None
        if job_id is not None and not _text(job_id):
            return None
        if parent is not None and not _text(parent):
            return None
        if spawned is not None and not _text(spawned):
            return None
        if depth is not None and not _positive(depth):
            return None
        cdef bint valid = False
        if etype == K_ITEM:
            item_type = _get(<dict>payload, K_ITEM_TYPE)
            valid = _text(item_type) and type(_get(<dict>payload, K_DATA)) is dict
        if not self._plain_new:
            event = self._new(self._cls)
            s = self._setters
            for i, value in enumerate((event_id, run_id, seq, etype, ts, payload, attempt, cv, job_id, parent,
                                       spawned, depth, size, valid)):
                (<PyTypeObject *>Py_TYPE(s[i])).tp_descr_set(s[i], event, value)
            self._last_valid = valid
            return event
        # ``object.__new__(cls)`` and the slot descriptors' stores, without the calls around them: a new
        # instance's slots are all empty (NULL), so each store only takes a reference
        event = PyBaseObject_Type.tp_new(self._cls, <PyObject *>_NO_ARGS, NULL)
        cdef char *base = <char *><PyObject *>event
        cdef Py_ssize_t *at = self._offsets
        _store(base, at[0], event_id)
        _store(base, at[1], run_id)
        _store(base, at[2], seq)
        _store(base, at[3], etype)
        _store(base, at[4], ts)
        _store(base, at[5], payload)
        _store(base, at[6], attempt)
        _store(base, at[7], cv)
        _store(base, at[8], job_id)
        _store(base, at[9], parent)
        _store(base, at[10], spawned)
        _store(base, at[11], depth)
        _store(base, at[12], size)
        _store(base, at[13], valid)
        # Nothing a new event refers to can refer back to it (texts, ints, None and its own payload, decoded
        # here), so it can't be part of a reference cycle and the cyclic collector needn't walk it: untracked,
        # as CPython untracks a tuple or dict of atoms. Its reference count frees it as before. (A caller that
        # stored an event inside its own payload would make a cycle the collector never frees; events are
        # immutable records and Quarry never does.)
        PyObject_GC_UnTrack(<void *>event)
        self._last_valid = valid
        return event

