"""Retry helpers shared by ingestion policies (policies.md §4, §5.5), Lode and adapters.

The backoff before retry ``i`` (1-based) is ``base * 2^(i-1)``, capped at ``cap``: with the defaults
100 ms, 200 ms, 400 ms, … 5 s. Snapshot ids live in :mod:`quarry_core.snapshot_ids`.

This module imports nothing heavy; it is safe to use from ``hooks.py`` modules.
"""

from __future__ import annotations

import math

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_CAP",
    "backoff_delay",
    "backoff_delays",
]

#: Delay before the first retry, in seconds.
DEFAULT_BACKOFF_BASE = 0.1
#: Upper bound of any single delay, in seconds.
DEFAULT_BACKOFF_CAP = 5.0


def backoff_delay(retry: int, *, base: float = DEFAULT_BACKOFF_BASE, cap: float = DEFAULT_BACKOFF_CAP) -> float:
    """Seconds to wait before retry number ``retry`` (1 = the first retry): ``min(cap, base * 2^(retry-1))``.

    >>> [backoff_delay(i) for i in (1, 2, 3, 7, 8)]
    [0.1, 0.2, 0.4, 5.0, 5.0]

    Raises ``ValueError`` for ``retry < 1`` or a negative ``base``/``cap``.
    """
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
        raise ValueError(f"retry must be an integer >= 1, got {retry!r}")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")
    try:
        delay = base * 2.0 ** (retry - 1)
    except OverflowError:  # absurd retry numbers: the cap decides (also when the cap is infinite)
        delay = math.inf
    return float(min(cap, delay))


def backoff_delays(
    retries: int, *, base: float = DEFAULT_BACKOFF_BASE, cap: float = DEFAULT_BACKOFF_CAP
) -> list[float]:
    """The delays before retries ``1..retries``; empty for ``retries <= 0``."""
    return [backoff_delay(i, base=base, cap=cap) for i in range(1, retries + 1)]
