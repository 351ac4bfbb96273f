"""Event ids and envelopes: what the executor puts on every event frame."""

from __future__ import annotations

import os
import uuid

import pytest

import quarry_speedups
from quarry_executor import envelope


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
