"""The one proxy selector used by the runtime (run start, fan-out children, ``rotate_proxy``) and by
``quarry debug resolve proxy`` / ``inspect proxy`` / ``stats proxies`` (proxy.md §4, §8, §11)."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from quarry_core.proxy.errors import ProxyError, ProxyStateStoreError
from quarry_core.proxy.keys import sticky_key_for
from quarry_core.proxy.model import ProxyPool, Rotation, Selection, SelectRequest
from quarry_core.proxy.stores import ProxyStateStore
from quarry_core.proxy.strategies import (
    BUILTIN_STRATEGY_TYPES,
    RAND_LIMIT,
    OperationResult,
    ProxyStrategy,
    StrategyRequest,
    apply_operation,
    builtin_strategies,
    normalize_state,
)

__all__ = ["ProxySelector", "format_ms"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _rand() -> int:
    return secrets.randbelow(RAND_LIMIT)


def format_ms(ms: int | None) -> str | None:
    """Milliseconds since the epoch as an RFC 3339 UTC timestamp (``2025-01-02T03:04:05.678Z``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProxySelector:
    """Selects endpoints from configured pools through one state store.

    ``strategies`` maps a strategy name to its implementation (default: the built-ins; the runtime passes the
    plugin host's ``quarry_proxy_selectors``). ``clock`` (ms) and ``rand`` are injectable for tests.
    """

    def __init__(
        self,
        pools: Mapping[str, ProxyPool],
        store: ProxyStateStore,
        strategies: Mapping[str, ProxyStrategy] | None = None,
        *,
        clock: Callable[[], int] = _now_ms,
        rand: Callable[[], int] = _rand,
    ) -> None:
        self.pools = dict(pools)
        self.store = store
        self.strategies: dict[str, ProxyStrategy] = dict(strategies) if strategies is not None else builtin_strategies()
        self._clock = clock
        self._rand = rand

    def __repr__(self) -> str:
        return f"ProxySelector(pools={sorted(self.pools)!r}, store={self.store!r})"

    def pool(self, name: str) -> ProxyPool:
        """The pool called ``name`` or ``ProxyError('unknown proxy pool "x"')``."""
        try:
            return self.pools[name]
        except KeyError:
            raise ProxyError(f'unknown proxy pool "{name}"') from None

    def _strategy(self, name: str) -> ProxyStrategy:
        try:
            return self.strategies[name]
        except KeyError:
            valid = ", ".join(sorted(self.strategies))
            raise ProxyError(f'unknown proxy strategy "{name}" (valid: {valid})') from None

    async def _apply(self, pool: ProxyPool, request: StrategyRequest) -> OperationResult:
        impl = self._strategy(request.strategy)
        now_ms, rand = self._clock(), self._rand()
        builtin_type = BUILTIN_STRATEGY_TYPES.get(request.strategy)
        fast = getattr(self.store, "apply_builtin", None)
        if fast is not None and builtin_type is not None and type(impl) is builtin_type:
            result, _ = await fast(pool, request, now_ms, rand)
            return result  # type: ignore[no-any-return]
        fn = functools.partial(apply_operation, pool=pool, request=request, now_ms=now_ms, rand=rand, strategy=impl)
        try:
            return await self.store.update(pool, fn)
        except ProxyError:
            raise
        except Exception as exc:  # a plugin store's own error: keep the message, classify it
            raise ProxyStateStoreError(f"{getattr(self.store, 'label', 'state')} state store: {exc}") from exc

    @staticmethod
    def _warnings(pool: ProxyPool, result: OperationResult) -> tuple[str, ...]:
        return (f"Warning: proxy pool {pool.name} changed; selection state reset",) if result.reset else ()

    async def select(self, request: SelectRequest) -> Selection:
        """Select an endpoint (§4-§6); ``request.commit`` false is a peek that changes nothing.

        Raises :class:`ProxyError` (unknown pool or strategy, no sticky key) or :class:`ProxyStateStoreError`;
        the runtime reports either as ``proxy selection failed: <message>``.
        """
        pool = self.pool(request.pool)
        strategy = request.strategy_override or pool.strategy
        self._strategy(strategy)
        key = sticky_key_for(pool, request, required=strategy == "sticky")
        window = pool.recency_window if pool.recency_applies(strategy) else None
        sreq = StrategyRequest(strategy=strategy, commit=request.commit, sticky_key=key, recency_window=window)
        result = await self._apply(pool, sreq)
        return Selection(
            pool=pool.name,
            endpoint=pool.endpoints[result.index],
            index=result.index,
            strategy=strategy,
            sticky_key=key if strategy == "sticky" else None,
            committed=request.commit,
            sequence=result.selections,
            warnings=self._warnings(pool, result),
        )

    async def rotate(
        self,
        pool_name: str,
        current_index: int,
        sticky_key: str | None = None,
        *,
        strategy: str | None = None,
    ) -> Rotation:
        """Atomically pick an endpoint other than ``current_index`` (§8 step 3) and count the rotation.

        ``sticky_key`` is the stored key of the run's selection (:attr:`Selection.sticky_key`), ``strategy`` its
        effective strategy (default: the pool's). A one-endpoint pool returns the same endpoint with
        ``changed=False``. Errors raise :class:`ProxyError`; the runtime replies ``ok: false`` with the message.
        The per-run rotation limit is the runtime's.
        """
        pool = self.pool(pool_name)
        effective = strategy or pool.strategy
        self._strategy(effective)
        if effective == "sticky" and not sticky_key:
            raise ProxyError("sticky selection requires a sticky key")
        window = pool.recency_window if pool.recency_applies(effective) else None
        sreq = StrategyRequest(
            strategy=effective, commit=True, sticky_key=sticky_key, recency_window=window, current_index=current_index
        )
        result = await self._apply(pool, sreq)
        return Rotation(
            pool=pool.name,
            endpoint=pool.endpoints[result.index],
            index=result.index,
            previous_index=current_index,
            changed=result.changed,
            strategy=effective,
            sticky_key=sticky_key if effective == "sticky" else None,
            rotations=result.rotations,
            warnings=self._warnings(pool, result),
        )

    async def rotate_selection(self, selection: Selection | Rotation) -> Rotation:
        """:meth:`rotate` away from the run's current selection (or its last rotation)."""
        return await self.rotate(selection.pool, selection.index, selection.sticky_key, strategy=selection.strategy)

    async def runtime_state(self, pool_name: str) -> dict[str, Any]:
        """``inspect proxy``'s ``runtime`` object: ``{round_robin_index, sticky_entries, recency_window?,
        recency_fill, selections, rotations, last_used_at}``. Reads only."""
        pool = self.pool(pool_name)
        window = pool.recency_window if pool.strategy == "random" else None
        raw = await self.store.read(pool)
        state, _ = normalize_state(raw, pool.fingerprint, len(pool.endpoints), window)
        now = self._clock()
        live = [e for e in state["sticky"].values() if e["expires_at_ms"] is None or e["expires_at_ms"] > now]
        runtime: dict[str, Any] = {"round_robin_index": state["rr_index"], "sticky_entries": len(live)}
        if window:
            runtime["recency_window"] = window
        runtime["recency_fill"] = len(state["recent"])
        runtime["selections"] = state["selections"]
        runtime["rotations"] = state["rotations"]
        runtime["last_used_at"] = format_ms(state["last_used_at"])
        return runtime

    async def describe(self, pool_name: str) -> dict[str, Any]:
        """``inspect proxy <pool>``: config plus store state; passwords appear only as ``password_set``."""
        pool = self.pool(pool_name)
        d: dict[str, Any] = {
            "name": pool.name,
            "strategy": pool.strategy,
            "endpoint_count": len(pool.endpoints),
            "endpoints": [e.to_public_dict() for e in pool.endpoints],
        }
        if pool.sticky is not None:
            d["sticky"] = pool.sticky.to_dict()
        if pool.recency_window is not None:
            d["recency_window"] = pool.recency_window
        d["state_store"] = getattr(self.store, "label", type(self.store).__name__)
        d["runtime"] = await self.runtime_state(pool_name)
        return d

    async def stats(self) -> list[dict[str, Any]]:
        """``stats proxies``: ``[{pool, requests, failures, last_used_at}]`` sorted by pool name."""
        rows = []
        for name in sorted(self.pools):
            runtime = await self.runtime_state(name)
            rows.append(
                {
                    "pool": name,
                    "requests": runtime["selections"],
                    "failures": runtime["rotations"],
                    "last_used_at": runtime["last_used_at"],
                }
            )
        return rows
