"""The example adapter on its own: registration through a plugin host and delivery with Quarry's retries."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from quarry_adapter_example import hooks

from quarry_core.errors import ConfigError
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import deliver_notification

EVENT = {"event_type": "run_completed", "notification_id": "n-1", "run_id": "r-1", "outcome": "success"}


def test_registers_with_its_option_schema() -> None:
    (plugin,) = list(hooks.quarry_notification_adapters())
    assert plugin.name == "example"
    assert [o.name for o in plugin.options] == ["fields", "fail_first"]


def test_writes_one_line_after_retries(tmp_path: Path) -> None:
    target = tmp_path / "events.jsonl"
    config = AdapterConfig(
        type="example", url=f"file://{target}", retries=2, options={"fields": "run_id,outcome", "fail_first": 1}
    )
    hooks.validate(config)
    asyncio.run(deliver_notification(hooks.make_adapter, config, EVENT))
    assert [json.loads(line) for line in target.read_text().splitlines()] == [{"run_id": "r-1", "outcome": "success"}]


def test_rejects_other_schemes_and_missing_directories(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="writes local files"):
        hooks.validate(AdapterConfig(type="example", url="https://example.com/x"))
    with pytest.raises(ConfigError, match="directory does not exist"):
        hooks.validate(AdapterConfig(type="example", url=str(tmp_path / "nope" / "x.jsonl")))
