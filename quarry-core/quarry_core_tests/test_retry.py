"""Tests of quarry_core.retry: the shared backoff and snapshot ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quarry_core.retry import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    backoff_delay,
    backoff_delays,
)
from quarry_core.snapshot_ids import SNAPSHOT_ID_PATTERN, new_snapshot_id


def test_defaults() -> None:
    assert DEFAULT_BACKOFF_BASE == 0.1
    assert DEFAULT_BACKOFF_CAP == 5.0


@pytest.mark.parametrize(
    ("retry", "delay"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 3.2), (7, 5.0), (50, 5.0), (10**6, 5.0)],
)
def test_backoff_doubles_and_caps(retry: int, delay: float) -> None:
    assert backoff_delay(retry) == pytest.approx(delay)


def test_backoff_custom_base_and_cap() -> None:
    assert backoff_delays(4, base=1.0, cap=3.0) == [1.0, 2.0, 3.0, 3.0]
    assert backoff_delays(0) == []


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_backoff_rejects_bad_retry_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        backoff_delay(bad)  # type: ignore[arg-type]


def test_backoff_rejects_negative_settings() -> None:
    with pytest.raises(ValueError, match="base and cap"):
        backoff_delay(1, base=-1)


@given(st.integers(min_value=1, max_value=10_000))
def test_backoff_is_monotonic_and_bounded(retry: int) -> None:
    assert 0 < backoff_delay(retry) <= DEFAULT_BACKOFF_CAP
    assert backoff_delay(retry) <= backoff_delay(retry + 1)


def test_snapshot_ids_have_the_lode_format_and_sort_by_time() -> None:
    ids = [new_snapshot_id() for _ in range(200)]
    assert all(SNAPSHOT_ID_PATTERN.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    stamps = [int(i.split("-")[0]) for i in ids]
    assert stamps == sorted(stamps)


def test_backoff_with_an_infinite_cap() -> None:
    import math

    assert backoff_delay(4, cap=math.inf) == 0.8
    assert backoff_delay(5000, cap=math.inf) == math.inf
