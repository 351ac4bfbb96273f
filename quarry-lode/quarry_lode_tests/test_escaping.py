from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quarry_lode.escaping import MAX_ESCAPED_BYTES, escape, escape_value, unescape


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("shop/eu", "shop%2Feu"),
        ("a=b", "a%3Db"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("100%", "100%25"),
        ("café bar", "café bar"),
        ("a\x00b\x1f\x7f", "a%00b%1F%7F"),
        ("\"#%'*/:=?\\^[]{}<>|", "%22%23%25%27%2A%2F%3A%3D%3F%5C%5E%5B%5D%7B%7D%3C%3E%7C"),
        ("...", "..."),
        ("a.b", "a.b"),
        ("2026-11-25", "2026-11-25"),
    ],
)
def test_examples(raw: str, escaped: str) -> None:
    assert escape_value(raw) == escaped
    assert unescape(escaped) == raw


def test_empty_is_rejected() -> None:
    with pytest.raises(ValueError, match="source must not be empty"):
        escape_value("", what="source")


def test_length_limit_counts_escaped_bytes() -> None:
    assert escape_value("a" * MAX_ESCAPED_BYTES)
    with pytest.raises(ValueError, match="longer than 200 bytes once escaped"):
        escape_value("a" * (MAX_ESCAPED_BYTES + 1))
    # 67 slashes are 201 escaped bytes although only 67 characters
    with pytest.raises(ValueError, match="longer than 200 bytes"):
        escape_value("/" * 67)
    assert escape_value("/" * 66) == "%2F" * 66


@given(st.text(min_size=1))
def test_round_trip(value: str) -> None:
    escaped = escape(value)
    assert unescape(escaped) == value
    assert "/" not in escaped
    assert escaped not in (".", "..")
    assert all(ord(c) >= 0x20 and ord(c) != 0x7F for c in escaped)
