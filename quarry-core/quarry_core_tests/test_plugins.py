"""The plugin host: fresh managers, records by name, conflicts, unknown names with install hints, load errors
as data, entry-point discovery through stub distributions, observer hooks that never break a run."""

from __future__ import annotations

import importlib.metadata as md
import sys
import types
from typing import Any

import pytest
from loguru import logger

from quarry_core import hookimpl
from quarry_core.errors import PluginConflictError, PluginLoadError, UnknownPluginError
from quarry_core.interfaces import RunInfo, RunOutcome
from quarry_core.plugins import PluginHost
from quarry_core.registrations import IngestionPolicyPlugin, StorageBackendPlugin


def _policy_plugin(*names: str) -> object:
    class P:
        @hookimpl
        def quarry_ingestion_policies(self) -> Any:
            for n in names:
                yield IngestionPolicyPlugin(name=n, factory=lambda *a: None, summary=f"{n} policy")

    return P()


@pytest.fixture
def host() -> PluginHost:
    return PluginHost.build(load_entrypoints=False)


def test_fresh_host_has_nothing(host: PluginHost) -> None:
    assert host.available("ingestion_policy") == {}
    assert [p.name for p in host.loaded] == ["core"]  # quarry-core's own built-ins only


def test_select_by_name_and_unknown_lists_available(host: PluginHost) -> None:
    host.register(_policy_plugin("strict", "mine"), name="a", distribution="dist-a", version="1")
    assert host.ingestion_policy("mine").distribution == "dist-a"
    with pytest.raises(UnknownPluginError) as exc:
        host.ingestion_policy("nope")
    assert str(exc.value) == 'unknown ingestion policy "nope"; available: mine (dist-a), strict (dist-a)'


def test_unknown_first_party_name_names_the_distribution(host: PluginHost) -> None:
    with pytest.raises(UnknownPluginError, match=r"buffered.*is provided by quarry-policy-buffered"):
        host.ingestion_policy("buffered")


def test_conflicting_names_name_both_distributions(host: PluginHost) -> None:
    host.register(_policy_plugin("dup"), name="a", distribution="dist-a")
    host.register(_policy_plugin("dup"), name="b", distribution="dist-b")
    with pytest.raises(PluginConflictError, match="dist-a, dist-b"):
        host.ingestion_policy("dup")


def test_aliases_select_a_backend(host: PluginHost) -> None:
    class B:
        @hookimpl
        def quarry_storage_backends(self) -> Any:
            yield StorageBackendPlugin(name="lode", aliases=("fs",), factory=lambda c: None)

    host.register(B(), name="b", distribution="quarry-lode")
    assert host.storage_backend("fs").name == "lode"


def test_a_hook_that_raises_becomes_a_load_error(host: PluginHost) -> None:
    class Broken:
        @hookimpl
        def quarry_ingestion_policies(self) -> Any:
            raise RuntimeError("kaput")

    host.register(Broken(), name="broken", distribution="dist-broken")
    assert host.available("ingestion_policy") == {}
    assert [(e.entry_point, e.error) for e in host.load_errors] == [("broken", "RuntimeError: kaput")]


class _StubDist:
    def __init__(self, name: str, eps: list[md.EntryPoint]) -> None:
        self.metadata = {"Name": name}
        self.version = "9.9"
        self.entry_points = eps


def _install_module(monkeypatch: pytest.MonkeyPatch, name: str, obj: object) -> None:
    mod = types.ModuleType(name)
    for attr in dir(obj):
        if attr.startswith("quarry_"):
            setattr(mod, attr, getattr(obj, attr))
    monkeypatch.setitem(sys.modules, name, mod)


def test_entry_points_load_one_by_one_and_failures_are_data(monkeypatch: pytest.MonkeyPatch) -> None:
    _install_module(monkeypatch, "good_plugin_mod", _policy_plugin("good"))
    good = md.EntryPoint(name="good", value="good_plugin_mod", group="quarry")
    bad = md.EntryPoint(name="bad", value="no_such_module_xyz", group="quarry")
    other = md.EntryPoint(name="x", value="whatever", group="console_scripts")
    dists = [_StubDist("good-dist", [good, other]), _StubDist("bad-dist", [bad]), _StubDist("good-dist", [good])]
    monkeypatch.setattr(md, "distributions", lambda: dists)
    warnings: list[str] = []
    logger.enable("quarry_core")
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    try:
        host = PluginHost.build(strict=False, disable=[], allow=None)
    finally:
        logger.remove(sink)
        logger.disable("quarry_core")
    assert host.ingestion_policy("good").distribution == "good-dist"
    assert [p.name for p in host.loaded] == ["core", "good"]  # the duplicate dist-info is skipped
    assert len(host.load_errors) == 1
    err = host.load_errors[0]
    assert (err.entry_point, err.distribution) == ("bad", "bad-dist")
    assert "ModuleNotFoundError" in err.error
    assert any('Warning: plugin "bad" from bad-dist 9.9 failed to load' in w for w in warnings)
    with pytest.raises(PluginLoadError):
        PluginHost.build(strict=True, disable=[], allow=None)
    blocked = PluginHost.build(strict=True, disable=["bad"], allow=None)
    assert blocked.load_errors == []
    allow = PluginHost.build(strict=True, disable=[], allow=["other-dist"])
    assert [p.name for p in allow.loaded] == ["core"]


def test_observer_hooks_are_isolated(host: PluginHost) -> None:
    import asyncio

    seen: list[str] = []

    class Obs:
        @hookimpl
        def quarry_run_started(self, run: RunInfo) -> None:
            seen.append(f"started {run.run_id}")

        @hookimpl
        async def quarry_run_finished(self, run: RunInfo, result: RunOutcome) -> None:
            seen.append(f"finished {result.outcome}")

    class Boom:
        @hookimpl
        def quarry_run_started(self, run: RunInfo) -> None:
            raise ValueError("observer bug")

    host.register(Obs(), name="obs")
    host.register(Boom(), name="boom")
    info = RunInfo(run_id="r1", attempt=1, source="s", category="c", day="2026-11-25", script="/s.py", policy="strict")
    asyncio.run(host.notify_run_started(info))
    asyncio.run(host.notify_run_finished(info, RunOutcome("success", "ok", 0, 3, 10)))
    assert seen == ["started r1", "finished success"]
