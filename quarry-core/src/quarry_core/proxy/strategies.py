"""Selection strategies (proxy.md §5, §6, §8) as pure functions over the pool's JSON state (§7).

``choose(pool, state, request, now_ms, rand) -> (index, new_state)`` is applied atomically by a state store; a
peek (``request.commit`` false) discards ``new_state``. ``rand`` is a non-negative integer (below
``RAND_LIMIT``, drawn from :mod:`secrets`); a uniform pick among ``k`` candidates is ``candidates[rand % k]``.
The same logic runs inside Redis as one Lua script (:mod:`quarry_core.proxy.redis_store`); both must agree.

State::

    {"fingerprint": str, "rr_index": int, "sticky": {key: {"index": int, "expires_at_ms": int | None}},
     "recent": [int], "selections": int, "rotations": int, "last_used_at": int | None}   # ms since the epoch
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from quarry_core.proxy.errors import ProxyError
from quarry_core.proxy.model import ProxyPool

__all__ = [
    "BUILTIN_STRATEGY_TYPES",
    "MAX_EXPIRES_MS",
    "RAND_LIMIT",
    "OperationResult",
    "ProxyStrategy",
    "RandomStrategy",
    "RoundRobinStrategy",
    "StickyStrategy",
    "StrategyRequest",
    "apply_operation",
    "builtin_strategies",
    "choose",
    "fresh_state",
    "normalize_state",
    "rotate",
]

State = dict[str, Any]

#: ``rand`` is drawn from ``[0, RAND_LIMIT)``; small enough for exact arithmetic in Lua doubles.
RAND_LIMIT = 1 << 48
#: Sticky expiries are clamped to the largest integer a double (Lua, JSON readers) holds exactly.
MAX_EXPIRES_MS = (1 << 53) - 1


@attrs.frozen
class StrategyRequest:
    """What a strategy sees of one selection or rotation.

    ``strategy`` is the effective strategy; ``sticky_key`` the prefixed key (or ``None``); ``recency_window``
    the window when it applies (§6), else ``None``; ``current_index`` is set for a rotation (§8) only.
    """

    strategy: str
    commit: bool = True
    sticky_key: str | None = None
    recency_window: int | None = None
    current_index: int | None = None

    @property
    def is_rotation(self) -> bool:
        return self.current_index is not None


@runtime_checkable
class ProxyStrategy(Protocol):
    """A selection strategy registered through ``quarry_proxy_selectors``.

    ``choose`` must be pure: it may modify and return the ``state`` it is given (a private copy) but must not
    touch anything else. A strategy may also define ``rotate`` with the same signature (``request.current_index``
    set), returning an index other than the current one when the pool has more than one endpoint; without it a
    rotation picks uniformly among the other endpoints.
    """

    def choose(
        self, pool: ProxyPool, state: State, request: StrategyRequest, now_ms: int, rand: int
    ) -> tuple[int, State]: ...


@attrs.frozen
class OperationResult:
    """What one atomic store update produced. ``reset``: the stored state belonged to other endpoints."""

    index: int
    changed: bool = False
    reset: bool = False
    selections: int = 0
    rotations: int = 0

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def fresh_state(fingerprint: str) -> State:
    """The state of a pool nobody selected from yet."""
    return {
        "fingerprint": fingerprint,
        "rr_index": 0,
        "sticky": {},
        "recent": [],
        "selections": 0,
        "rotations": 0,
        "last_used_at": None,
    }


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _nonneg(value: object) -> int | None:
    v = _int(value)
    return v if v is not None and v >= 0 else None


def normalize_state(raw: object, fingerprint: str, n: int, window: int | None) -> tuple[State, bool]:
    """Validate a stored state against the pool; returns ``(state, reset)``.

    ``raw`` ``None`` (nothing stored) gives a fresh state without reset; anything that is not an object with
    this pool's fingerprint gives a fresh state with ``reset=True``. Invalid fields fall back to their defaults,
    sticky entries and recent indices out of range are dropped, ``recent`` is made distinct (keeping the latest
    occurrence) and trimmed to ``window`` when one applies.
    """
    if raw is None:
        return fresh_state(fingerprint), False
    if not isinstance(raw, Mapping) or raw.get("fingerprint") != fingerprint:
        return fresh_state(fingerprint), True
    state = fresh_state(fingerprint)
    for name in ("rr_index", "selections", "rotations"):
        v = _nonneg(raw.get(name))
        if v is not None:
            state[name] = v
    state["last_used_at"] = _int(raw.get("last_used_at"))
    sticky = raw.get("sticky")
    if isinstance(sticky, Mapping):
        for key, entry in sticky.items():
            if not isinstance(key, str) or not isinstance(entry, Mapping):
                continue
            index = _nonneg(entry.get("index"))
            if index is None or index >= n:
                continue
            expires = entry.get("expires_at_ms")
            if expires is None:
                state["sticky"][key] = {"index": index, "expires_at_ms": None}
            elif _int(expires) is not None:
                state["sticky"][key] = {"index": index, "expires_at_ms": _int(expires)}
    recent = raw.get("recent")
    if isinstance(recent, list):
        valid = [v for v in (_nonneg(x) for x in recent) if v is not None and v < n]
        distinct: list[int] = []
        for v in reversed(valid):
            if v not in distinct:
                distinct.append(v)
        distinct.reverse()
        if window:
            distinct = distinct[-window:]
        state["recent"] = distinct
    return state, False


def _expiry(now_ms: int, ttl_ms: int | None) -> int | None:
    return None if ttl_ms is None else min(now_ms + ttl_ms, MAX_EXPIRES_MS)


def _mark_recent(state: State, index: int, window: int) -> None:
    recent = [i for i in state["recent"] if i != index]
    recent.append(index)
    state["recent"] = recent[-window:]


def _ttl(pool: ProxyPool) -> int | None:
    return pool.sticky.ttl_ms if pool.sticky is not None else None


def _sticky_key(request: StrategyRequest) -> str:
    if not request.sticky_key:
        raise ProxyError("sticky selection requires a sticky key")
    return request.sticky_key


def choose(pool: ProxyPool, state: State, request: StrategyRequest, now_ms: int, rand: int) -> tuple[int, State]:
    """Pick an endpoint for a built-in strategy (``round_robin``, ``random``, ``sticky``); see §5/§6."""
    n = len(pool.endpoints)
    strategy = request.strategy
    if strategy == "sticky":
        key = _sticky_key(request)
    if n == 1:
        return 0, state
    if strategy == "round_robin":
        index = state["rr_index"] % n
        if request.commit:
            state["rr_index"] = (index + 1) % n
        return index, state
    if strategy == "random":
        window = request.recency_window
        if not window:
            return rand % n, state
        recent: list[int] = state["recent"]
        candidates = [i for i in range(n) if i not in recent]
        index = candidates[rand % len(candidates)] if candidates else recent[0]
        if request.commit:
            _mark_recent(state, index, window)
        return index, state
    if strategy == "sticky":
        entry = state["sticky"].get(key)
        if entry is not None and (entry["expires_at_ms"] is None or entry["expires_at_ms"] > now_ms):
            return int(entry["index"]), state
        index = rand % n
        if request.commit:
            state["sticky"][key] = {"index": index, "expires_at_ms": _expiry(now_ms, _ttl(pool))}
        return index, state
    raise ProxyError(f'unknown proxy strategy "{strategy}"')


def rotate(pool: ProxyPool, state: State, request: StrategyRequest, now_ms: int, rand: int) -> tuple[int, State]:
    """Pick an endpoint other than ``request.current_index`` (§8 step 3) for a built-in strategy.

    ``round_robin`` advances past the current one; ``random`` also avoids ``recent`` (falling back to the least
    recently used other endpoint) and marks the pick; ``sticky`` picks among the others and overwrites the key's
    entry with a fresh TTL. A one-endpoint pool returns 0.
    """
    n = len(pool.endpoints)
    strategy = request.strategy
    current = request.current_index
    if strategy == "sticky":
        key = _sticky_key(request)
    if n == 1:
        return 0, state
    others = [i for i in range(n) if i != current]
    if strategy == "round_robin":
        index = state["rr_index"] % n
        if index == current:
            index = (index + 1) % n
        if request.commit:
            state["rr_index"] = (index + 1) % n
        return index, state
    if strategy == "random":
        window = request.recency_window
        if not window:
            return others[rand % len(others)], state
        recent: list[int] = state["recent"]
        candidates = [i for i in others if i not in recent]
        if not candidates:
            candidates = [next(i for i in recent if i != current)]
        index = candidates[rand % len(candidates)]
        if request.commit:
            _mark_recent(state, index, window)
        return index, state
    if strategy == "sticky":
        index = others[rand % len(others)]
        if request.commit:
            state["sticky"][key] = {"index": index, "expires_at_ms": _expiry(now_ms, _ttl(pool))}
        return index, state
    raise ProxyError(f'unknown proxy strategy "{strategy}"')


def _generic_rotate(
    pool: ProxyPool, state: State, request: StrategyRequest, now_ms: int, rand: int
) -> tuple[int, State]:
    others = [i for i in range(len(pool.endpoints)) if i != request.current_index]
    if not others:
        return 0, state
    return others[rand % len(others)], state


def apply_operation(
    raw: object,
    pool: ProxyPool,
    request: StrategyRequest,
    now_ms: int,
    rand: int,
    strategy: ProxyStrategy,
) -> tuple[OperationResult, State | None]:
    """One atomic read-apply step for a state store's ``update``: normalise ``raw`` (resetting a changed pool),
    let the strategy choose (or rotate), then on commit count it (``selections`` or ``rotations``), stamp
    ``last_used_at`` and purge expired sticky entries. Returns ``(result, new_state or None for a peek)``."""
    n = len(pool.endpoints)
    state, reset = normalize_state(raw, pool.fingerprint, n, request.recency_window)
    step: Callable[..., tuple[int, State]] = strategy.choose
    if request.is_rotation:
        step = getattr(strategy, "rotate", None) or _generic_rotate
    index, new_state = step(pool, state, request, now_ms, rand)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ProxyError(f'proxy strategy "{request.strategy}" returned index {index!r} for {n} endpoint(s)')
    if not isinstance(new_state, dict):
        raise ProxyError(f'proxy strategy "{request.strategy}" returned a state that is not an object')
    if request.commit:
        counter = "rotations" if request.is_rotation else "selections"
        new_state[counter] = int(new_state.get(counter) or 0) + 1
        new_state["last_used_at"] = now_ms
        sticky = new_state.get("sticky")
        if isinstance(sticky, dict):
            for key, entry in list(sticky.items()):
                expires = entry.get("expires_at_ms") if isinstance(entry, Mapping) else None
                if isinstance(expires, int) and expires <= now_ms:
                    del sticky[key]
        new_state["fingerprint"] = pool.fingerprint
    result = OperationResult(
        index=index,
        changed=request.is_rotation and index != request.current_index,
        reset=reset,
        selections=int(new_state.get("selections") or 0),
        rotations=int(new_state.get("rotations") or 0),
    )
    return result, (new_state if request.commit else None)


class _Builtin:
    name: str = ""

    def choose(
        self, pool: ProxyPool, state: State, request: StrategyRequest, now_ms: int, rand: int
    ) -> tuple[int, State]:
        """See :func:`choose`."""
        return choose(pool, state, attrs.evolve(request, strategy=self.name), now_ms, rand)

    def rotate(
        self, pool: ProxyPool, state: State, request: StrategyRequest, now_ms: int, rand: int
    ) -> tuple[int, State]:
        """See :func:`rotate`."""
        return rotate(pool, state, attrs.evolve(request, strategy=self.name), now_ms, rand)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobinStrategy(_Builtin):
    """``round_robin``: ``rr_index mod n``; a commit advances ``rr_index``."""

    name = "round_robin"


class RandomStrategy(_Builtin):
    """``random``: uniform over the endpoints outside the recency window (§6)."""

    name = "random"


class StickyStrategy(_Builtin):
    """``sticky``: the key's unexpired assignment, else a uniform pick stored on commit."""

    name = "sticky"


#: Built-in strategy classes by name (the Redis store runs these as one Lua script).
BUILTIN_STRATEGY_TYPES: dict[str, type[_Builtin]] = {
    "random": RandomStrategy,
    "round_robin": RoundRobinStrategy,
    "sticky": StickyStrategy,
}


def builtin_strategies() -> dict[str, ProxyStrategy]:
    """Fresh instances of the built-in strategies by name."""
    return {name: cls() for name, cls in BUILTIN_STRATEGY_TYPES.items()}
