"""The ``quarry_executors`` registration and the launcher it builds (runtime.md §2)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points

import pytest

import quarry_executor
from quarry_core.interfaces import ExecutorConfig
from quarry_core.registrations import ExecutorPlugin
from quarry_executor import hooks


def test_entry_point_is_registered() -> None:
    eps = [ep for ep in entry_points(group="quarry") if ep.value == "quarry_executor.hooks"]
    assert [ep.name for ep in eps] == ["executor"]


def test_registration_and_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    (plugin,) = list(hooks.quarry_executors())
    assert isinstance(plugin, ExecutorPlugin) and plugin.name == "playwright" and plugin.summary
    launcher = plugin.factory(ExecutorConfig(python="/venv/bin/python"))
    assert launcher.name == "playwright"
    assert launcher.version == quarry_executor.__version__
    assert launcher.command() == ["/venv/bin/python", "-P", "-m", "quarry_executor"]
    assert launcher.command(warm=True) == ["/venv/bin/python", "-P", "-m", "quarry_executor", "--warm"]
    assert launcher.env() == {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/a", "/proj", "", "/b"]))
    launcher = plugin.factory(ExecutorConfig(python=sys.executable, resolve_from="/proj"))
    env = launcher.env()
    assert env["PYTHONPATH"] == os.pathsep.join(["/proj", "/a", "/b"])
    assert env["QUARRY_RESOLVE_FROM"] == "/proj"

    monkeypatch.delenv("PYTHONPATH")
    assert plugin.factory(ExecutorConfig(python="p", resolve_from="/proj")).env()["PYTHONPATH"] == "/proj"


def test_hooks_module_imports_nothing_heavy() -> None:
    import subprocess

    code = "import sys, quarry_executor.hooks; print(sorted(m for m in sys.modules if m.startswith('playwright')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_exports() -> None:
    import types

    public = sorted(
        n
        for n, v in vars(quarry_executor).items()
        if (not n.startswith("_") or n == "__version__") and not isinstance(v, types.ModuleType)
    )
    assert quarry_executor.__all__ == public
