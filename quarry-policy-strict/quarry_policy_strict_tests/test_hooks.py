from __future__ import annotations

import asyncio

import pytest

from quarry_core.errors import ConfigError
from quarry_core.interfaces import IngestionPolicy, PolicyConfig
from quarry_core.registrations import IngestionPolicyPlugin
from quarry_core.testing.fakes import MemorySink, policy_context
from quarry_policy_strict import hooks


def test_registers_strict() -> None:
    (plugin,) = list(hooks.quarry_ingestion_policies())
    assert isinstance(plugin, IngestionPolicyPlugin)
    assert plugin.name == "strict"
    assert plugin.summary
    assert plugin.option_names == frozenset({"max_flush_retries"})
    assert plugin.validate is not None
    plugin.validate(PolicyConfig(name="strict"))
    with pytest.raises(ConfigError):
        plugin.validate(PolicyConfig(name="strict", max_flush_retries=-2))
    sink = MemorySink()
    policy = plugin.factory(PolicyConfig(name="strict"), sink, policy_context("strict"))
    assert isinstance(policy, IngestionPolicy)
    assert policy.name == "strict"
    asyncio.run(policy.close())
