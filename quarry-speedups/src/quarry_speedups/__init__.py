"""Optional compiled accelerators for Quarry's ingestion hot path.

:func:`decode_json_map` decodes a CBOR frame body that stays inside the JSON data model (CONTRACT_IPC §2) and
returns ``None`` for anything else, so a caller falls back to ``cbor2.loads`` for the value or the error.
"""

from quarry_speedups._cbor import MAX_DEPTH, decode_json_map

__version__ = "0.1.0"

__all__ = ["MAX_DEPTH", "__version__", "decode_json_map"]
