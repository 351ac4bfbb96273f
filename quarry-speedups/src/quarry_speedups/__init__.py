"""Optional compiled accelerators for Quarry's frame hot paths.

:func:`decode_json_map` decodes a CBOR frame body that stays inside the JSON data model (CONTRACT_IPC §2) and
returns ``None`` for anything else, so a caller falls back to ``cbor2.loads`` for the value or the error.
:class:`EventDecoder` decodes the same way and builds the common event frame's event object itself.

:func:`encode_json_map` is its counterpart: for a ``dict`` built only of exact JSON-model types it returns the
very bytes ``cbor2.dumps`` would, and ``None`` for anything else, so a caller falls back to ``cbor2.dumps`` for
the bytes or the error. :func:`encode_json_frame` returns the same body behind its 4-byte big-endian length
prefix, in one ``bytes``; :func:`encode_event_frame` writes an event envelope's frame without building its map.
:func:`flat_json_map` tells a flat JSON-model payload at C speed; :func:`uuid4_texts` formats a pool of random event
ids. :func:`json_array_split` cuts a compact JSON array's text into its elements as an Arrow string array's
buffers.
"""

from quarry_speedups._cbor import EVENT_SLOTS, MAX_DEPTH, EventDecoder, decode_json_map
from quarry_speedups._encode import (
    encode_event_frame,
    encode_json_frame,
    encode_json_map,
    flat_json_map,
    json_array_split,
    uuid4_texts,
)

__version__ = "0.1.0"

__all__ = [
    "EVENT_SLOTS",
    "MAX_DEPTH",
    "EventDecoder",
    "__version__",
    "decode_json_map",
    "encode_event_frame",
    "encode_json_frame",
    "encode_json_map",
    "flat_json_map",
    "json_array_split",
    "uuid4_texts",
]
