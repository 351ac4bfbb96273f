"""Validation and derived settings (policies.md §5.1, §6) and the plugin registrations."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import quarry_policy_buffered
from quarry_core.errors import ConfigError
from quarry_core.interfaces import IngestionPolicy, PolicyConfig
from quarry_core.registrations import IngestionPolicyPlugin
from quarry_core.testing.fakes import MemorySink, policy_context
from quarry_policy_buffered import (
    BufferedSettings,
    StreamingSettings,
    hooks,
    validate_buffered,
    validate_streaming,
)


def buffered_config(**kw: object) -> PolicyConfig:
    return PolicyConfig(name="buffered", **kw)  # type: ignore[arg-type]


def test_no_limits_is_exit_4() -> None:
    with pytest.raises(ConfigError) as info:
        validate_buffered(buffered_config())
    assert str(info.value) == (
        "buffered policy requires buffer limits: set --buffer-events and/or --buffer-bytes to a value > 0"
    )


def test_bad_flush_mode() -> None:
    with pytest.raises(ConfigError) as info:
        validate_buffered(buffered_config(buffer_events=1, flush_mode="x"))
    assert str(info.value) == 'invalid --flush-mode "x" (valid: at_least_once, chunks_first, two_phase)'


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"buffer_events": -1}, "invalid --buffer-events -1 (must be >= 0)"),
        ({"buffer_events": 1, "buffer_bytes": -5}, "invalid --buffer-bytes -5 (must be >= 0)"),
        ({"buffer_events": 1, "max_flush_retries": -1}, "invalid --max-flush-retries -1 (must be >= 0)"),
        ({"buffer_events": 1, "batch_events": -1}, "invalid --batch-events -1 (must be >= 0)"),
        ({"buffer_events": 4, "batch_events": 5}, "invalid --batch-events 5: must be <= --buffer-events (4)"),
        ({"buffer_bytes": 100, "batch_bytes": 101}, "invalid --batch-bytes 101: must be <= --buffer-bytes (100)"),
    ],
)
def test_invalid_buffered_settings(settings: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_buffered(buffered_config(**settings))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("settings", "batch_events", "batch_bytes"),
    [
        ({"buffer_events": 5}, 3, 0),
        ({"buffer_events": 4}, 2, 0),
        ({"buffer_events": 1}, 1, 0),
        ({"buffer_bytes": 1001}, 0, 500),
        ({"buffer_events": 10, "buffer_bytes": 100}, 5, 50),
        ({"buffer_events": 10, "batch_events": 10}, 10, 0),
        ({"buffer_bytes": 10, "batch_events": 7}, 7, 5),  # no event limit: any batch_events
    ],
)
def test_derived_batch_sizes(settings: dict[str, int], batch_events: int, batch_bytes: int) -> None:
    s = BufferedSettings.from_config(buffered_config(**settings))
    assert (s.batch_events, s.batch_bytes) == (batch_events, batch_bytes)
    assert s.flush_mode == "at_least_once"
    assert s.max_flush_retries == 3


def test_streaming_requires_a_trigger() -> None:
    with pytest.raises(ConfigError) as info:
        validate_streaming(PolicyConfig(name="streaming"))
    assert str(info.value) == (
        "streaming policy requires at least one flush trigger: set --flush-count and/or --flush-interval"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"flush_count": -1}, "invalid --flush-count -1 (must be >= 0)"),
        ({"flush_count": 1, "flush_interval": -0.5}, "invalid --flush-interval -0.5 (must be >= 0)"),
        ({"flush_count": 1, "max_flush_retries": -2}, "invalid --max-flush-retries -2 (must be >= 0)"),
    ],
)
def test_invalid_streaming_settings(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_streaming(PolicyConfig(name="streaming", **settings))  # type: ignore[arg-type]
    assert str(info.value) == message


def test_streaming_settings() -> None:
    s = StreamingSettings.from_config(PolicyConfig(name="streaming", flush_interval=2))
    assert (s.flush_count, s.flush_interval, s.max_flush_retries) == (0, 2.0, 3)


def test_registrations() -> None:
    plugins = {p.name: p for p in hooks.quarry_ingestion_policies()}
    assert set(plugins) == {"buffered", "streaming"}
    for p in plugins.values():
        assert isinstance(p, IngestionPolicyPlugin)
        assert p.summary
        assert p.validate is not None
    assert plugins["buffered"].option_names == frozenset(
        {"buffer_events", "buffer_bytes", "batch_events", "batch_bytes", "flush_mode", "max_flush_retries"}
    )
    assert plugins["streaming"].option_names == frozenset({"flush_count", "flush_interval", "max_flush_retries"})
    with pytest.raises(ConfigError):
        plugins["buffered"].validate(buffered_config())  # type: ignore[misc]
    with pytest.raises(ConfigError):
        plugins["streaming"].validate(PolicyConfig(name="streaming"))  # type: ignore[misc]

    async def build() -> None:
        for name, config in (
            ("buffered", buffered_config(buffer_events=1)),
            ("streaming", PolicyConfig(name="streaming", flush_count=1)),
        ):
            policy = plugins[name].factory(config, MemorySink(), policy_context(name))
            assert isinstance(policy, IngestionPolicy)
            assert policy.name == name
            await policy.close()

    asyncio.run(build())


def test_factory_rejects_invalid_settings_too() -> None:
    with pytest.raises(ConfigError):
        hooks.make_buffered_policy(buffered_config(), MemorySink(), policy_context("buffered"))


def _isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _public(module: object) -> list[str]:
    names = [n for n in vars(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]
    return sorted([*names, "__version__"] if hasattr(module, "__version__") else names, key=_isort_key)


def test_package_all_is_sorted_public_names() -> None:
    assert quarry_policy_buffered.__all__ == _public(quarry_policy_buffered)
