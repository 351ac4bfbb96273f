"""Settings of the ``buffered`` and ``streaming`` policies, derived values and their validation.

``validate_buffered`` / ``validate_streaming`` raise :class:`~quarry_core.errors.ConfigError` with the exit-4
messages of policies.md §5.1 and §6. They import nothing heavy and are what ``hooks.py`` registers as
``validate``.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from quarry_core.errors import ConfigError
from quarry_core.interfaces import PolicyConfig

__all__ = [
    "CHUNK_BYTE_CAP",
    "FLUSH_MODES",
    "FLUSH_TRIGGERS",
    "STREAMING_BYTE_CAP",
    "STREAMING_ITEM_CAP",
    "BufferedSettings",
    "StreamingSettings",
    "validate_buffered",
    "validate_streaming",
]

#: Flush modes of the buffered policy (policies.md §5.5).
FLUSH_MODES: tuple[str, ...] = ("at_least_once", "chunks_first", "two_phase")
#: Bound of the chunk bytes ``buffered`` holds when no byte limit is set (policies.md §5.2).
CHUNK_BYTE_CAP = 128 * 1024 * 1024
#: Internal caps of ``streaming`` (policies.md §6).
STREAMING_ITEM_CAP = 50_000
STREAMING_BYTE_CAP = 128 * 1024 * 1024

#: The keys of ``PolicyStats.flush_triggers`` (buffered and streaming), always all present.
FLUSH_TRIGGERS: tuple[str, ...] = ("count", "interval", "termination", "capacity")


def _non_negative_int(value: Any, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"invalid --{flag} {value!r} (must be an integer >= 0)")
    if value < 0:
        raise ConfigError(f"invalid --{flag} {value} (must be >= 0)")
    return value


@attrs.frozen
class BufferedSettings:
    """Validated ``buffered`` settings with the derived batch thresholds (0 = no threshold of that kind)."""

    buffer_events: int
    buffer_bytes: int
    batch_events: int
    batch_bytes: int
    flush_mode: str
    max_flush_retries: int

    @classmethod
    def from_config(cls, config: PolicyConfig) -> BufferedSettings:
        """Validate ``config`` (raising :class:`ConfigError`) and derive the batch sizes."""
        buffer_events = _non_negative_int(config.buffer_events, "buffer-events")
        buffer_bytes = _non_negative_int(config.buffer_bytes, "buffer-bytes")
        batch_events_in = config.batch_events
        batch_bytes_in = config.batch_bytes
        if batch_events_in is not None:
            _non_negative_int(batch_events_in, "batch-events")
        if batch_bytes_in is not None:
            _non_negative_int(batch_bytes_in, "batch-bytes")
        retries = _non_negative_int(config.max_flush_retries, "max-flush-retries")
        if buffer_events <= 0 and buffer_bytes <= 0:
            raise ConfigError(
                "buffered policy requires buffer limits: set --buffer-events and/or --buffer-bytes to a value > 0"
            )
        if config.flush_mode not in FLUSH_MODES:
            raise ConfigError(f'invalid --flush-mode "{config.flush_mode}" (valid: {", ".join(FLUSH_MODES)})')
        batch_events = batch_events_in if batch_events_in is not None else math.ceil(buffer_events / 2)
        batch_bytes = batch_bytes_in if batch_bytes_in is not None else buffer_bytes // 2
        if buffer_events > 0 and batch_events > buffer_events:
            raise ConfigError(f"invalid --batch-events {batch_events}: must be <= --buffer-events ({buffer_events})")
        if buffer_bytes > 0 and batch_bytes > buffer_bytes:
            raise ConfigError(f"invalid --batch-bytes {batch_bytes}: must be <= --buffer-bytes ({buffer_bytes})")
        return cls(
            buffer_events=buffer_events,
            buffer_bytes=buffer_bytes,
            batch_events=batch_events,
            batch_bytes=batch_bytes,
            flush_mode=config.flush_mode,
            max_flush_retries=retries,
        )


@attrs.frozen
class StreamingSettings:
    """Validated ``streaming`` settings (0 = that trigger is off)."""

    flush_count: int
    flush_interval: float
    max_flush_retries: int

    @classmethod
    def from_config(cls, config: PolicyConfig) -> StreamingSettings:
        flush_count = _non_negative_int(config.flush_count, "flush-count")
        interval = config.flush_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not math.isfinite(interval):
            raise ConfigError(f"invalid --flush-interval {interval!r} (must be a duration >= 0)")
        if interval < 0:
            raise ConfigError(f"invalid --flush-interval {interval} (must be >= 0)")
        retries = _non_negative_int(config.max_flush_retries, "max-flush-retries")
        if flush_count <= 0 and interval <= 0:
            raise ConfigError(
                "streaming policy requires at least one flush trigger: set --flush-count and/or --flush-interval"
            )
        return cls(flush_count=flush_count, flush_interval=float(interval), max_flush_retries=retries)


def validate_buffered(config: PolicyConfig) -> None:
    """Raise :class:`ConfigError` (exit 4) for impossible ``buffered`` settings."""
    BufferedSettings.from_config(config)


def validate_streaming(config: PolicyConfig) -> None:
    """Raise :class:`ConfigError` (exit 4) for impossible ``streaming`` settings."""
    StreamingSettings.from_config(config)
