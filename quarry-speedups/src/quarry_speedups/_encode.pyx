# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A CBOR (RFC 8949) encoder for the JSON-model subset Quarry's event frames are made of.

``encode_json_map(obj)`` returns exactly the bytes ``cbor2.dumps(obj)`` returns (default options: no canonical
mode, no value sharing, no string referencing) when ``obj`` lies inside the subset below, and ``None`` for
anything else; the caller then encodes with ``cbor2.dumps``, which gives the reference bytes or the reference
error. ``encode_json_frame(obj)`` returns the same body behind a 4-byte big-endian length prefix. Accepted:

* the top level is an exact ``dict`` (not a subclass);
* every map key is an exact ``str``;
* every value is an exact ``str``, ``bool``, ``None``, an exact ``int`` in [-2**64, 2**64 - 1] (the range
  cbor2 writes as major type 0 / 1 rather than as a bignum tag), an exact ``float``, or an exact ``list``,
  ``tuple`` (cbor2 writes both as arrays) or ``dict`` of the same;
* every string is valid UTF-8 once encoded (a ``str`` holding a lone surrogate makes cbor2 raise);
* containers nest at most ``MAX_DEPTH`` levels below the top-level map (the top-level map is depth 0, so a
  container at depth 200 is accepted and one at depth 201 is not: the decoder's rule).

What cbor2 6.3.0 writes, and so what this writes: definite lengths, the shortest argument for every head
(integers, string lengths, array and map counts), dict items in insertion order, every finite float as a
double (0xfb, also -0.0 and subnormals: cbor2 shortens floats only in canonical mode), every NaN as the
half-precision quiet NaN f9 7e00 (sign and payload dropped), and +/-inf as half precision f9 7c00 / f9 fc00.

Only exact built-in types are accepted, so no Python code runs while encoding: no ``__hash__``, ``__eq__``,
``__iter__``, ``__len__``, ``__index__`` or ``__float__`` override is ever called (the C API calls below are made
on exact types only), and no garbage collection either: nothing GC-tracked is allocated on the way (the UTF-8 of a
non-ASCII string and the result are plain memory and a ``bytes``), except the exception of a failed UTF-8
conversion, after which the walk stops at once. The GIL is held throughout, so no other thread runs (a
free-threaded CPython re-enables the GIL on importing this module, which does not declare itself free-threading
compatible). The containers therefore cannot change while they are walked, which is what makes the borrowed
references below safe; keep it so: anything that could run Python code (a subclass, ``__index__``, an iterator)
must be declined, not handled. The walk keeps its own stack of MAX_DEPTH + 1 frames, so the C stack never grows
with the input's nesting. Nothing raises for any input except ``MemoryError``.
"""

from libc.stdint cimport uint64_t
from libc.string cimport memcpy
from libc.math cimport isnan, isinf
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    # Declared here on borrowed ``PyObject *`` (instead of cimporting the ``object`` signatures) so the walk
    # does no reference counting.  Extern functions are ``noexcept`` in Cython 3: the one call that can fail
    # on our inputs (PyUnicode_AsUTF8AndSize) is checked by hand; the others cannot fail on the exact types
    # they are given.
    PyTypeObject *_type_of "Py_TYPE"(PyObject *o)
    PyTypeObject PyUnicode_Type
    PyTypeObject PyLong_Type
    PyTypeObject PyFloat_Type
    PyTypeObject PyDict_Type
    PyTypeObject PyList_Type
    PyTypeObject PyTuple_Type
    PyObject *_TRUE "Py_True"
    PyObject *_FALSE "Py_False"
    PyObject *_NONE "Py_None"
    PyObject *PyExc_MemoryError

    Py_ssize_t PyDict_GET_SIZE(PyObject *d)
    int PyDict_Next(PyObject *d, Py_ssize_t *pos, PyObject **key, PyObject **value)
    Py_ssize_t PyList_GET_SIZE(PyObject *l)
    PyObject *PyList_GET_ITEM(PyObject *l, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(PyObject *t)
    PyObject *PyTuple_GET_ITEM(PyObject *t, Py_ssize_t i)
    double PyFloat_AS_DOUBLE(PyObject *f)
    long long PyLong_AsLongLongAndOverflow(PyObject *n, int *overflow)
    unsigned long long PyLong_AsUnsignedLongLongMask(PyObject *n)
    int PyObject_RichCompareBool(PyObject *a, PyObject *b, int op)
    const char *PyUnicode_AsUTF8AndSize(PyObject *s, Py_ssize_t *size)
    int PyUnicode_IS_COMPACT_ASCII(PyObject *s)
    void *PyUnicode_DATA(PyObject *s)
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject *s)
    int PyErr_ExceptionMatches(PyObject *exc)
    void PyErr_Clear()
    int Py_LT, Py_GE
    Py_ssize_t PY_SSIZE_T_MAX


cdef enum:
    # Maximum container nesting depth accepted (top-level map is depth 0); the same limit as the decoder's
    # (quarry_speedups._cbor.MAX_DEPTH, a test checks that they agree).
    _MAX_DEPTH = 200
    # Bytes of output kept on the C stack before the buffer moves to the heap: a typical event frame (a few
    # hundred bytes) never allocates anything but its result.
    LOCAL_BUF_SIZE = 2048
    # Room left below PY_SSIZE_T_MAX for the bytes object's header: PyBytes_FromStringAndSize raises
    # OverflowError beyond it, and the buffer stops growing (MemoryError) first.
    BYTES_HEADER_ROOM = 64
    # The container kinds of a walk frame.
    KIND_MAP = 0
    KIND_LIST = 1
    KIND_TUPLE = 2

#: containers may nest this many levels below the top-level map
MAX_DEPTH = _MAX_DEPTH

# Integers from 2**63 up and from -2**63 - 1 down overflow a C long long; these bound the ones cbor2 still
# writes as major type 0 / 1 (beyond them it writes tag 2 / 3 bignums, which this module declines).
cdef object _UINT64_END = 2**64           # first positive int declined
cdef object _NEG_UINT64_MIN = -(2**64)    # last negative int accepted


cdef struct Buf:
    unsigned char *data     # the local array or a PyMem block
    Py_ssize_t len          # bytes written
    Py_ssize_t cap          # bytes available at data
    bint on_heap            # data is a PyMem block this module must free


cdef struct Frame:
    PyObject *obj           # borrowed: the parent container (or the caller) holds it
    Py_ssize_t pos          # PyDict_Next position, or the next list / tuple index
    int kind                # KIND_MAP / KIND_LIST / KIND_TUPLE


# ---------------------------------------------------------------------------
# Output buffer
# ---------------------------------------------------------------------------

cdef int _grow(Buf *b, size_t need) except -1:
    """Make room for *need* more bytes: double the capacity (or more) on the heap, or raise MemoryError.

    A failed realloc leaves the old block in place and owned by *b*, so the caller's cleanup still frees it.
    """
    cdef Py_ssize_t limit = PY_SSIZE_T_MAX - BYTES_HEADER_ROOM
    cdef Py_ssize_t want, cap
    cdef unsigned char *p
    if need > <size_t>(limit - b.len):
        raise MemoryError()
    want = b.len + <Py_ssize_t>need
    cap = b.cap
    while cap < want:
        cap = cap * 2 if cap <= limit // 2 else limit
    if b.on_heap:
        p = <unsigned char *>PyMem_Realloc(b.data, <size_t>cap)
    else:
        p = <unsigned char *>PyMem_Malloc(<size_t>cap)
        if p != NULL:
            memcpy(p, b.data, <size_t>b.len)
    if p == NULL:
        raise MemoryError()
    b.data = p
    b.cap = cap
    b.on_heap = True
    return 0


cdef inline int _reserve(Buf *b, size_t need) except -1:
    """Make sure *need* more bytes fit (size_t, so ``length + 9`` cannot overflow)."""
    if <size_t>(b.cap - b.len) < need:
        return _grow(b, need)
    return 0


# ---------------------------------------------------------------------------
# Writers (each returns 1 when written, 0 to decline, -1 with MemoryError set)
# ---------------------------------------------------------------------------

cdef inline void _put_be64(unsigned char *p, uint64_t v) noexcept:
    """Store *v* big-endian in the 8 bytes at *p*."""
    p[0] = <unsigned char>(v >> 56)
    p[1] = <unsigned char>(v >> 48)
    p[2] = <unsigned char>(v >> 40)
    p[3] = <unsigned char>(v >> 32)
    p[4] = <unsigned char>(v >> 24)
    p[5] = <unsigned char>(v >> 16)
    p[6] = <unsigned char>(v >> 8)
    p[7] = <unsigned char>v


cdef inline int _head(Buf *b, unsigned int major, uint64_t arg) except -1:
    """Write a head: *major* is already shifted (0x00, 0x20, ... 0xa0); *arg* in its shortest form."""
    cdef unsigned char *p
    _reserve(b, 9)
    p = b.data + b.len
    if arg < 24:
        p[0] = <unsigned char>(major | arg)
        b.len += 1
    elif arg <= 0xff:
        p[0] = <unsigned char>(major | 24)
        p[1] = <unsigned char>arg
        b.len += 2
    elif arg <= 0xffff:
        p[0] = <unsigned char>(major | 25)
        p[1] = <unsigned char>(arg >> 8)
        p[2] = <unsigned char>arg
        b.len += 3
    elif arg <= 0xffffffffULL:
        p[0] = <unsigned char>(major | 26)
        p[1] = <unsigned char>(arg >> 24)
        p[2] = <unsigned char>(arg >> 16)
        p[3] = <unsigned char>(arg >> 8)
        p[4] = <unsigned char>arg
        b.len += 5
    else:
        p[0] = <unsigned char>(major | 27)
        _put_be64(p + 1, arg)
        b.len += 9
    return 1


cdef inline int _write_text(Buf *b, PyObject *s) except -1:
    """Write an exact ``str`` as a text string (major type 3); decline one with a lone surrogate."""
    cdef Py_ssize_t n
    cdef const char *p
    # A compact ASCII string is its own UTF-8: read its buffer in place (what PyUnicode_AsUTF8AndSize would
    # return, without the call: some 5% of a typical event's time). Any other string is encoded once by
    # CPython and the UTF-8 cached on it (cbor2 calls the same function, through PyO3's ``to_str``); it fails
    # for a lone surrogate.
    if PyUnicode_IS_COMPACT_ASCII(s):
        p = <const char *>PyUnicode_DATA(s)
        n = PyUnicode_GET_LENGTH(s)
    else:
        p = PyUnicode_AsUTF8AndSize(s, &n)
    if p == NULL:
        if PyErr_ExceptionMatches(PyExc_MemoryError):
            return -1
        PyErr_Clear()       # UnicodeEncodeError: a surrogate that strict UTF-8 cannot carry
        return 0
    _reserve(b, <size_t>n + 9)
    _head(b, 0x60, <uint64_t>n)
    memcpy(b.data + b.len, p, <size_t>n)
    b.len += n
    return 1


cdef inline int _write_int(Buf *b, PyObject *o) except -1:
    """Write an exact ``int`` as major type 0 / 1; decline one cbor2 would write as a bignum (tag 2 / 3)."""
    cdef int overflow = 0
    cdef int cmp
    cdef long long v = PyLong_AsLongLongAndOverflow(o, &overflow)
    if overflow == 0:
        if v >= 0:
            return _head(b, 0x00, <uint64_t>v)
        return _head(b, 0x20, <uint64_t>(-1 - v))           # -1 - INT64_MIN == INT64_MAX: no overflow
    if overflow > 0:
        cmp = PyObject_RichCompareBool(o, <PyObject *>_UINT64_END, Py_LT)
        if cmp != 1:
            if cmp < 0:
                PyErr_Clear()   # cannot happen for two exact ints; never leak an error from a decline
            return 0
        return _head(b, 0x00, PyLong_AsUnsignedLongLongMask(o))
    cmp = PyObject_RichCompareBool(o, <PyObject *>_NEG_UINT64_MIN, Py_GE)
    if cmp != 1:
        if cmp < 0:
            PyErr_Clear()
        return 0
    # o is in [-2**64, -2**63 - 1]: the mask is o + 2**64, and its complement is -1 - o.
    return _head(b, 0x20, ~(<uint64_t>PyLong_AsUnsignedLongLongMask(o)))


cdef inline int _write_text_or_int(Buf *b, PyObject *o, PyTypeObject *t) except -1:
    """Write *o*, whose exact type *t* is ``str`` or ``int``, as ``_write_text`` or ``_write_int`` does."""
    if t == &PyUnicode_Type:
        return _write_text(b, o)
    return _write_int(b, o)


cdef inline int _write_float(Buf *b, PyObject *o) except -1:
    """Write an exact ``float`` as cbor2 does: a double, or a half-precision NaN / infinity."""
    cdef double x = PyFloat_AS_DOUBLE(o)
    cdef uint64_t bits
    cdef unsigned char *p
    _reserve(b, 9)
    p = b.data + b.len
    if isnan(x):
        p[0] = 0xf9
        p[1] = 0x7e
        p[2] = 0x00
        b.len += 3
        return 1
    if isinf(x):
        p[0] = 0xf9
        p[1] = 0xfc if x < 0 else 0x7c
        p[2] = 0x00
        b.len += 3
        return 1
    memcpy(&bits, &x, 8)
    p[0] = 0xfb
    _put_be64(p + 1, bits)
    b.len += 9
    return 1


# ---------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------

cdef int _encode_map(PyObject *top, Buf *b, int base=0) except -1:
    """Append the encoding of the exact dict *top* to *b*; 1 when written, 0 to decline.

    Depth-first over an explicit stack: ``stack[d]`` is the container being written at depth ``d`` (the
    top-level map at 0). A container is pushed after its head is written and popped when its last item is.
    *base* is the nesting level of *top* itself (a map inside another one that the caller writes): the depth
    limit counts from the outermost map.
    """
    cdef Frame stack[_MAX_DEPTH + 1]
    cdef int depth = 0
    cdef Frame *f
    cdef PyObject *key
    cdef PyObject *value
    cdef PyTypeObject *t
    cdef Py_ssize_t n
    cdef int kind

    n = PyDict_GET_SIZE(top)
    _head(b, 0xa0, <uint64_t>n)
    if n == 0:
        return 1
    stack[0].obj = top
    stack[0].pos = 0
    stack[0].kind = KIND_MAP

    while True:
        # Next item of the innermost open container, or pop it when it is done.
        f = &stack[depth]
        if f.kind == KIND_MAP:
            if not PyDict_Next(f.obj, &f.pos, &key, &value):
                if depth == 0:
                    return 1
                depth -= 1
                continue
            if _type_of(key) != &PyUnicode_Type:
                return 0
            if _write_text(b, key) == 0:
                return 0
        elif f.kind == KIND_LIST:
            if f.pos >= PyList_GET_SIZE(f.obj):
                depth -= 1          # depth > 0: only the top-level container is a map
                continue
            value = PyList_GET_ITEM(f.obj, f.pos)
            f.pos += 1
        else:
            if f.pos >= PyTuple_GET_SIZE(f.obj):
                depth -= 1
                continue
            value = PyTuple_GET_ITEM(f.obj, f.pos)
            f.pos += 1

        # The value, most frequent types first.
        t = _type_of(value)
        if t == &PyUnicode_Type or t == &PyLong_Type:
            if _write_text_or_int(b, value, t) == 0:
                return 0
        elif value == _TRUE or value == _FALSE or value == _NONE:
            _reserve(b, 1)
            b.data[b.len] = 0xf5 if value == _TRUE else (0xf4 if value == _FALSE else 0xf6)
            b.len += 1
        elif t == &PyFloat_Type:
            _write_float(b, value)
        else:
            if t == &PyDict_Type:
                kind = KIND_MAP
                n = PyDict_GET_SIZE(value)
                _head(b, 0xa0, <uint64_t>n)
            elif t == &PyList_Type:
                kind = KIND_LIST
                n = PyList_GET_SIZE(value)
                _head(b, 0x80, <uint64_t>n)
            elif t == &PyTuple_Type:
                kind = KIND_TUPLE
                n = PyTuple_GET_SIZE(value)
                _head(b, 0x80, <uint64_t>n)
            else:
                return 0            # subclasses, bytes, sets, Decimal, datetime, ... : cbor2 decides
            # The new container sits at depth + 1 (an empty one too, and a self-containing one is
            # declined here once its chain reaches the limit: cbor2 raises for cycles).
            if depth + base == _MAX_DEPTH:
                return 0
            if n:
                depth += 1
                stack[depth].obj = value
                stack[depth].pos = 0
                stack[depth].kind = kind


cdef object _encode(object obj, Py_ssize_t prefix):
    """The encoding of *obj* after *prefix* bytes left for a length prefix, or None to decline."""
    if type(obj) is not dict:
        return None
    cdef unsigned char local[LOCAL_BUF_SIZE]
    cdef Buf b
    b.data = local
    b.len = prefix
    b.cap = LOCAL_BUF_SIZE
    b.on_heap = False
    try:
        if _encode_map(<PyObject *>obj, &b) == 0:
            return None
        return _result(&b, prefix)
    finally:
        if b.on_heap:
            PyMem_Free(b.data)


cdef object _result(Buf *b, Py_ssize_t prefix):
    """The ``bytes`` of *b*, its first *prefix* (0 or 4) bytes set to the body's big-endian length; None when
    the body does not fit the 32-bit length prefix."""
    cdef Py_ssize_t body
    if prefix:
        body = b.len - prefix
        if <uint64_t>body > 0xffffffffULL:
            return None
        b.data[0] = <unsigned char>(body >> 24)
        b.data[1] = <unsigned char>(body >> 16)
        b.data[2] = <unsigned char>(body >> 8)
        b.data[3] = <unsigned char>body
    return PyBytes_FromStringAndSize(<char *>b.data, b.len)


# the event envelope's keys, in the order the executor writes them (encode_event_frame)
cdef str _K_CV = "contract_version"
cdef str _K_EVENT_ID = "event_id"
cdef str _K_RUN_ID = "run_id"
cdef str _K_SEQ = "seq"
cdef str _K_TYPE = "type"
cdef str _K_TS = "ts"
cdef str _K_PAYLOAD = "payload"
cdef str _K_ATTEMPT = "attempt"
cdef frozenset _ENVELOPE_KEYS = frozenset((_K_CV, _K_EVENT_ID, _K_RUN_ID, _K_SEQ, _K_TYPE, _K_TS, _K_PAYLOAD,
                                           _K_ATTEMPT))


cdef inline int _text_item(Buf *b, str key, object value) except -1:
    """Write ``key`` and the exact ``str`` ``value``; 0 to decline any other value."""
    if type(value) is not str:
        return 0
    _write_text(b, <PyObject *>key)
    return _write_text(b, <PyObject *>value)


cdef inline int _int_item(Buf *b, str key, object value) except -1:
    """Write ``key`` and the exact ``int`` ``value``; 0 to decline any other value."""
    if type(value) is not int:
        return 0
    _write_text(b, <PyObject *>key)
    return _write_int(b, <PyObject *>value)


cdef int _encode_envelope(Buf *b, object cv, object event_id, object run_id, object seq, object etype, object ts,
                          dict payload, object attempt, dict lineage) except -1:
    """Write the envelope map; 1 when written, 0 to decline (see encode_event_frame)."""
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    cdef PyTypeObject *t
    _head(b, 0xa0, <uint64_t>(8 + PyDict_GET_SIZE(<PyObject *>lineage)))
    if not (_text_item(b, _K_CV, cv) and _text_item(b, _K_EVENT_ID, event_id)
            and _text_item(b, _K_RUN_ID, run_id) and _int_item(b, _K_SEQ, seq)
            and _text_item(b, _K_TYPE, etype) and _text_item(b, _K_TS, ts)):
        return 0
    _write_text(b, <PyObject *>_K_PAYLOAD)
    if _encode_map(<PyObject *>payload, b, 1) == 0 or _int_item(b, _K_ATTEMPT, attempt) == 0:
        return 0
    while PyDict_Next(<PyObject *>lineage, &pos, &key, &value):
        if _type_of(key) != &PyUnicode_Type or _write_text(b, key) == 0:
            return 0
        t = _type_of(value)
        if (t != &PyUnicode_Type and t != &PyLong_Type) or _write_text_or_int(b, value, t) == 0:
            return 0
    return 1


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------

def encode_json_map(obj):
    """Encode *obj* if it is a JSON-model map, else return ``None``.

    Returns bytes identical to ``cbor2.dumps(obj)``, or ``None`` when *obj* (at any depth) is outside the
    supported subset; the caller then calls ``cbor2.dumps(obj)`` for the bytes or the error. Raises nothing
    but ``MemoryError``.
    """
    return _encode(obj, 0)


def encode_json_frame(obj):
    """Encode *obj* as a frame: a 4-byte big-endian length, then ``encode_json_map(obj)``; else ``None``.

    The prefix and the body are written into one ``bytes``. ``None`` wherever :func:`encode_json_map` gives
    ``None``, and also when the body is longer than 2**32 - 1 bytes.
    """
    return _encode(obj, 4)


def encode_event_frame(cv, event_id, run_id, seq, etype, ts, payload, attempt, lineage):
    """The frame :func:`encode_json_frame` gives for the event envelope ``{"contract_version": cv, "event_id":
    event_id, "run_id": run_id, "seq": seq, "type": etype, "ts": ts, "payload": payload, "attempt": attempt,
    **lineage}``, written without building that map; else ``None`` (the caller then builds the map and encodes
    it). ``None`` wherever :func:`encode_json_frame` gives ``None``, and also unless the texts are exact
    ``str``, ``seq`` and ``attempt`` exact ``int``, ``payload`` and ``lineage`` exact ``dict`` and the lineage
    values exact ``str`` or ``int`` under keys other than the envelope's. Raises nothing but ``MemoryError``.
    """
    if type(payload) is not dict or type(lineage) is not dict:
        return None
    if lineage and not _ENVELOPE_KEYS.isdisjoint(lineage):
        return None                 # the map would keep the envelope key's place with the lineage's value
    cdef unsigned char local[LOCAL_BUF_SIZE]
    cdef Buf b
    b.data = local
    b.len = 4
    b.cap = LOCAL_BUF_SIZE
    b.on_heap = False
    try:
        if _encode_envelope(&b, cv, event_id, run_id, seq, etype, ts, <dict>payload, attempt, <dict>lineage) == 0:
            return None
        return _result(&b, 4)
    finally:
        if b.on_heap:
            PyMem_Free(b.data)


def flat_json_map(d):
    """``True`` when ``d`` is an exact ``dict`` whose keys are exact ``str`` and whose values are each an exact
    ``str``, ``bool``, ``None``, an ``int`` in the signed 64-bit range or a finite ``float``: a flat payload
    inside the JSON data model (CONTRACT_IPC §2; the executor still lets the encoder judge the strings' UTF-8).
    ``False`` for anything else, nested values included: the caller then checks it the general way. Runs no
    Python code of ``d``'s items and raises nothing."""
    if type(d) is not dict:
        return False
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    cdef PyTypeObject *t
    cdef int overflow
    cdef double x
    while PyDict_Next(<PyObject *>d, &pos, &key, &value):
        if _type_of(key) != &PyUnicode_Type:
            return False
        t = _type_of(value)
        if t == &PyUnicode_Type or value == _TRUE or value == _FALSE or value == _NONE:
            continue
        if t == &PyLong_Type:
            overflow = 0
            PyLong_AsLongLongAndOverflow(value, &overflow)  # an exact int: no error, only the overflow flag
            if overflow != 0:
                return False
            continue
        if t == &PyFloat_Type:
            x = PyFloat_AS_DOUBLE(value)
            if isnan(x) or isinf(x):
                return False
            continue
        return False
    return True


# ---------------------------------------------------------------------------
# Event ids
# ---------------------------------------------------------------------------

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *_unicode_data "PyUnicode_DATA"(object s)

cdef const char *_HEX = b"0123456789abcdef"


def uuid4_texts(raw):
    """The version 4 UUID text (``str(uuid.UUID(bytes=block, version=4))``) of each whole 16-byte block of the
    ``bytes`` *raw*, in order: the version and variant bits are set, the rest of the block is kept."""
    if type(raw) is not bytes:
        raise TypeError(f"raw must be bytes, got {type(raw).__name__}")
    cdef const unsigned char *src = raw
    cdef Py_ssize_t blocks = len(raw) // 16
    cdef list out = []
    cdef Py_ssize_t i, j, k
    cdef unsigned char byte
    cdef char *dst
    for i in range(blocks):
        text = PyUnicode_New(36, 127)
        dst = <char *>_unicode_data(text)
        k = 0
        for j in range(16):
            if j == 4 or j == 6 or j == 8 or j == 10:
                dst[k] = b'-'
                k += 1
            byte = src[16 * i + j]
            if j == 6:
                byte = (byte & 0x0f) | 0x40      # version 4
            elif j == 8:
                byte = (byte & 0x3f) | 0x80      # variant 10xx (RFC 9562)
            dst[k] = _HEX[byte >> 4]
            dst[k + 1] = _HEX[byte & 0x0f]
            k += 2
        out.append(text)
    return out



# 1 for the bytes json_array_split must look at outside a string: quotes, brackets, braces and commas
cdef unsigned char _JSON_CLASS[256]
_JSON_CLASS[:] = [1 if chr(b) in '"[]{},' else 0 for b in range(256)]


def json_array_split(data, Py_ssize_t count):
    """The elements of the compact JSON array text ``data`` (``bytes``, as ``orjson.dumps`` of a list writes it:
    no whitespace) as an Arrow string array's two buffers: ``(offsets, values)``, ``values`` the elements' texts
    one after the other (the array's brackets and separating commas left out) and ``offsets`` the ``count + 1``
    native-endian 32-bit offsets into it (element ``i`` is ``values[offsets[i]:offsets[i + 1]]``). ``None`` when
    ``data`` is not such an array of exactly ``count`` elements, or is 2 GiB or longer (32-bit offsets).

    Only the array's own commas separate: those inside a nested array or object or inside a string (escapes
    included) are kept."""
    if type(data) is not bytes:
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    cdef const unsigned char *p = data
    cdef Py_ssize_t n = len(data)
    if count < 0 or n < 2 or n > 0x7fffffff or p[0] != b'[' or p[n - 1] != b']':
        return None
    if (count == 0) != (n == 2):
        return None
    offsets = PyBytes_FromStringAndSize(NULL, 4 * (count + 1))
    cdef int *at = <int *><char *>offsets
    at[0] = 0
    if count == 0:
        return offsets, b""
    # first the separating commas: at[j] holds where element j starts in data (j >= 1)
    cdef Py_ssize_t i = 1, last = n - 1, found = 0, depth = 0
    cdef unsigned char c
    while i < last:
        c = p[i]
        if _JSON_CLASS[c] == 0:              # most bytes: nothing to track
            i += 1
            continue
        if c == b'"':                        # a string: on to its closing quote, past escaped characters
            i += 1
            while i < last and p[i] != b'"':
                i += 2 if p[i] == b'\\' else 1
            if i >= last:
                return None
        elif c == b'[' or c == b'{':
            depth += 1
        elif c == b']' or c == b'}':
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0:                     # a comma of the array itself
            found += 1
            if found >= count:
                return None                  # more elements than expected
            at[found] = <int>(i + 1)
        i += 1
    if depth != 0 or found != count - 1:
        return None
    # then the elements' texts, one after the other, and their offsets into them
    values = PyBytes_FromStringAndSize(NULL, n - 2 - (count - 1))
    cdef char *dst = <char *>values
    cdef Py_ssize_t j, start, end, k = 0
    for j in range(count):
        start = at[j] if j else 1
        end = at[j + 1] - 1 if j + 1 < count else last
        at[j] = <int>k
        memcpy(dst + k, p + start, end - start)
        k += end - start
    at[count] = <int>k
    return offsets, values
