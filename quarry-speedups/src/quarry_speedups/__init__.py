"""Optional compiled accelerators for Quarry's ingestion hot path.

:func:`decode_json_map` decodes a CBOR frame body that stays inside the JSON data model (CONTRACT_IPC §2) and
returns ``None`` for anything else, so a caller falls back to ``cbor2.loads`` for the value or the error.
:class:`EventDecoder` decodes the same way and builds the common event frame's event object itself.
"""

from quarry_speedups._cbor import EVENT_SLOTS, MAX_DEPTH, EventDecoder, decode_json_map

__version__ = "0.1.0"

__all__ = ["EVENT_SLOTS", "MAX_DEPTH", "EventDecoder", "__version__", "decode_json_map"]
