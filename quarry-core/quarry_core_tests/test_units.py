from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quarry_core.partitions import escape_partition_value, partition_value_error, unescape_partition_value
from quarry_core.units import parse_bool, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("1.5s", 1.5), ("1m30s", 90), ("0", 0), ("2h", 7200), ("10us", 1e-5), ("10µs", 1e-5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "-1s", "1x", "s", "", "1s 2s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_bare_numbers_are_seconds_only_in_config() -> None:
    assert parse_duration("5", bare_number_seconds=True) == 5
    assert parse_duration(5, bare_number_seconds=True) == 5


@pytest.mark.parametrize(
    ("text", "n"), [("100", 100), ("1KB", 1000), ("1KiB", 1024), ("1.5MiB", 1572864), ("2GB", 2 * 10**9)]
)
def test_sizes(text: str, n: int) -> None:
    assert parse_size(text) == n


def test_bools() -> None:
    assert [parse_bool(x) for x in ("1", "true", "yes", "0", "false", "no")] == [True] * 3 + [False] * 3
    with pytest.raises(ValueError, match="invalid boolean"):
        parse_bool("maybe")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("shop/eu", "shop%2Feu"),
        ("a=b", "a%3Db"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("100%", "100%25"),
        ("café bar", "café bar"),
    ],
)
def test_partition_escaping_examples(value: str, escaped: str) -> None:
    assert escape_partition_value(value) == escaped


@given(st.text(min_size=1))
def test_partition_escaping_round_trips_and_never_leaves_its_directory(value: str) -> None:
    escaped = escape_partition_value(value)
    assert unescape_partition_value(escaped) == value
    assert "/" not in escaped and "\\" not in escaped and "\x00" not in escaped
    assert escaped not in (".", "..")


def test_partition_value_limits() -> None:
    assert partition_value_error("source", "") == "source must not be empty"
    assert partition_value_error("source", "x" * 200) is None
    assert "longer than 200 bytes" in (partition_value_error("source", "/" * 67) or "")
