"""pytest fixtures for plugin tests (loaded through ``pytest_plugins = ["quarry_core.testing"]``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from quarry_core.plugins import PluginHost

__all__ = ["plugin_host", "register_plugin"]


@pytest.fixture
def plugin_host() -> PluginHost:
    """A fresh plugin host with quarry-core's built-ins and no entry points loaded."""
    return PluginHost.build(load_entrypoints=False, strict=True, disable=[], allow=None, trace=False)


@pytest.fixture
def register_plugin(plugin_host: PluginHost) -> Iterator[Callable[..., None]]:
    """``register_plugin(obj, name, distribution="(local)")``: registered for this test, then unregistered."""
    names: list[str] = []

    def register(obj: object, name: str, distribution: str = "(local)", version: str = "") -> None:
        plugin_host.register(obj, name=name, distribution=distribution, version=version)
        names.append(name)

    try:
        yield register
    finally:
        for name in names:
            plugin_host.unregister(name)
