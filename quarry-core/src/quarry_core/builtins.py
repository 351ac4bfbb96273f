"""Implementations that ship inside quarry-core itself, registered directly by the plugin host (not through an
entry point): proxy selection strategies and proxy state stores.

Hooks stay cheap: the implementations are imported inside the factories.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from quarry_core import hookimpl
from quarry_core.registrations import ProxySelectorPlugin, ProxyStateStorePlugin

__all__ = ["quarry_proxy_selectors", "quarry_proxy_state_stores"]


def _round_robin() -> Any:
    from quarry_core.proxy.strategies import RoundRobinStrategy

    return RoundRobinStrategy()


def _random() -> Any:
    from quarry_core.proxy.strategies import RandomStrategy

    return RandomStrategy()


def _sticky() -> Any:
    from quarry_core.proxy.strategies import StickyStrategy

    return StickyStrategy()


def _memory_store(config: Any) -> Any:
    from quarry_core.proxy.stores import MemoryStateStore

    return MemoryStateStore(config)


def _file_store(config: Any) -> Any:
    from quarry_core.proxy.stores import FileStateStore

    return FileStateStore(config)


def _redis_store(config: Any) -> Any:
    import importlib.util

    from quarry_core.errors import ConfigError

    if importlib.util.find_spec("redis") is None:
        raise ConfigError('the redis proxy state store needs the redis package: pip install "quarry-core[redis]"')
    from quarry_core.proxy.redis_store import RedisStateStore

    return RedisStateStore.from_config(config)


@hookimpl
def quarry_proxy_selectors() -> Iterator[ProxySelectorPlugin]:
    """The built-in strategies ``round_robin``, ``random`` and ``sticky`` (proxy.md §5)."""
    yield ProxySelectorPlugin(name="round_robin", factory=_round_robin, summary="each endpoint in turn")
    yield ProxySelectorPlugin(name="random", factory=_random, summary="uniform pick, optional recency window")
    yield ProxySelectorPlugin(name="sticky", factory=_sticky, summary="same endpoint per job, domain or origin")


@hookimpl
def quarry_proxy_state_stores() -> Iterator[ProxyStateStorePlugin]:
    """The built-in state stores ``memory``, ``file`` and ``redis`` (proxy.md §7)."""
    yield ProxyStateStorePlugin(name="memory", factory=_memory_store, summary="per process, lost on exit")
    yield ProxyStateStorePlugin(name="file", factory=_file_store, summary="flock-guarded JSON files on this host")
    yield ProxyStateStorePlugin(name="redis", factory=_redis_store, summary="shared Redis (quarry-core[redis])")
