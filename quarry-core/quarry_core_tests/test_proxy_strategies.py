"""proxy.md §5, §6, §8: the pure strategies and the atomic apply step, through the real memory store."""

from __future__ import annotations

import itertools

import anyio
import pytest

from quarry_core.proxy import (
    MemoryStateStore,
    ProxyEndpoint,
    ProxyError,
    ProxyPool,
    ProxySelector,
    SelectRequest,
    StickyConfig,
    StrategyRequest,
    apply_operation,
    builtin_strategies,
)
from quarry_core.proxy.strategies import MAX_EXPIRES_MS, fresh_state, normalize_state

NOW = 1_700_000_000_000


def endpoints(n: int) -> list[ProxyEndpoint]:
    return [ProxyEndpoint("http", f"p{i}.example", 8000 + i, "user", "s3cr3t-Zq9") for i in range(n)]


class Clock:
    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Rand:
    """Deterministic ``rand`` values, cycling through ``values``."""

    def __init__(self, *values: int) -> None:
        self._it = itertools.cycle(values or (0,))

    def __call__(self) -> int:
        return next(self._it)


def selector(*pools: ProxyPool, rand: Rand | None = None, clock: Clock | None = None) -> ProxySelector:
    return ProxySelector(
        {p.name: p for p in pools}, MemoryStateStore(), rand=rand or Rand(0, 1, 2, 3, 5, 7), clock=clock or Clock()
    )


async def picks(sel: ProxySelector, pool: str, count: int, **kw: object) -> list[int]:
    return [(await sel.select(SelectRequest(pool, **kw))).index for _ in range(count)]  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- round robin


@pytest.mark.anyio
async def test_round_robin_cycles_and_peek_changes_nothing() -> None:
    sel = selector(ProxyPool("rr", "round_robin", endpoints(3)))
    assert (await sel.select(SelectRequest("rr", commit=False))).index == 0
    assert (await sel.select(SelectRequest("rr", commit=False))).index == 0
    assert await picks(sel, "rr", 7) == [0, 1, 2, 0, 1, 2, 0]
    peek = await sel.select(SelectRequest("rr", commit=False))
    assert (peek.index, peek.committed) == (1, False)
    assert (await sel.select(SelectRequest("rr"))).index == 1


# ----------------------------------------------------------------------------------------------- recency window


def _no_repeat_within(seq: list[int], w: int) -> bool:
    return all(seq[i] not in seq[max(0, i - w) : i] for i in range(len(seq)))


@pytest.mark.anyio
@pytest.mark.parametrize("rand", [(0,), (1,), (7, 3, 2, 9), (5, 0, 0, 1, 4)])
async def test_n3_w2_no_consecutive_repeats(rand: tuple[int, ...]) -> None:
    sel = selector(ProxyPool("r", "random", endpoints(3), recency_window=2), rand=Rand(*rand))
    seq = await picks(sel, "r", 30)
    assert _no_repeat_within(seq, 2)
    # after two distinct picks each pick is the one index outside the last two
    for i in range(2, len(seq)):
        assert seq[i] == ({0, 1, 2} - {seq[i - 1], seq[i - 2]}).pop()


@pytest.mark.anyio
@pytest.mark.parametrize("w", [3, 5])
async def test_n3_w3_or_more_is_strict_lru_after_three_picks(w: int) -> None:
    sel = selector(ProxyPool("r", "random", endpoints(3), recency_window=w), rand=Rand(4, 1, 9, 2, 2))
    seq = await picks(sel, "r", 15)
    assert sorted(seq[:3]) == [0, 1, 2]
    for i in range(3, len(seq)):
        assert seq[i] == seq[i - 3]
    state = await sel.store.read(sel.pools["r"])
    assert len(state["recent"]) == 3  # at most min(w, n), distinct


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", ["random", "round_robin", "sticky"])
async def test_single_endpoint_always_index_zero(strategy: str) -> None:
    pool = ProxyPool("one", strategy, endpoints(1), recency_window=3 if strategy == "random" else None)
    sel = selector(pool, rand=Rand(5, 9, 13))
    assert await picks(sel, "one", 5, job_id="j") == [0] * 5
    rotation = await sel.rotate("one", 0, "job:j")
    assert (rotation.index, rotation.changed) == (0, False)


@pytest.mark.anyio
async def test_recency_peeks_change_nothing() -> None:
    pool = ProxyPool("r", "random", endpoints(3), recency_window=2)
    sel = selector(pool, rand=Rand(0))
    await picks(sel, "r", 2)
    before = await sel.store.read(pool)
    peeks = [(await sel.select(SelectRequest("r", commit=False))).index for _ in range(5)]
    assert len(set(peeks)) == 1
    assert await sel.store.read(pool) == before


@pytest.mark.anyio
async def test_recency_only_for_random_pool_and_random_strategy() -> None:
    pool = ProxyPool("r", "random", endpoints(3), recency_window=2)
    sel = selector(pool, rand=Rand(0))
    # overridden to round_robin: the window does not apply and recent is untouched
    await picks(sel, "r", 3, strategy_override="round_robin")
    assert (await sel.store.read(pool))["recent"] == []
    # without a window random is plain uniform: rand 0 always gives 0
    plain = selector(ProxyPool("p", "random", endpoints(3)), rand=Rand(0))
    assert await picks(plain, "p", 4) == [0, 0, 0, 0]


def test_upstream_ring_duplicates_are_normalised_away() -> None:
    pool = ProxyPool("r", "random", endpoints(3), recency_window=5)
    state, reset = normalize_state(
        {"fingerprint": pool.fingerprint, "recent": [1, 1, 2, 1, 9, "x"]}, pool.fingerprint, 3, 5
    )
    assert (state["recent"], reset) == ([2, 1], False)


# ----------------------------------------------------------------------------------------------- sticky


@pytest.mark.anyio
async def test_sticky_keeps_endpoint_until_ttl_then_purges() -> None:
    clock = Clock()
    pool = ProxyPool("s", "sticky", endpoints(4), sticky=StickyConfig("domain", ttl_ms=1000))
    sel = selector(pool, rand=Rand(2, 3, 1), clock=clock)
    first = await sel.select(SelectRequest("s", domain="shop.example"))
    assert first.sticky_key == "domain:shop.example"
    assert first.index == 2
    clock.now += 999
    assert (await sel.select(SelectRequest("s", domain="shop.example"))).index == 2
    other = await sel.select(SelectRequest("s", domain="other.example"))
    assert other.index == 1  # rand 1 (the second rand, 3, was drawn and ignored by the hit above)
    state = await sel.store.read(pool)
    assert state["sticky"]["domain:shop.example"] == {"index": 2, "expires_at_ms": NOW + 1000}
    clock.now = NOW + 1000  # expired exactly at expires_at_ms
    again = await sel.select(SelectRequest("s", domain="shop.example", commit=False))
    assert again.committed is False
    clock.now = NOW + 5000
    await sel.select(SelectRequest("s", domain="third.example"))
    state = await sel.store.read(pool)
    assert set(state["sticky"]) == {"domain:third.example"}  # expired entries purged on a committed update


@pytest.mark.anyio
async def test_sticky_without_ttl_lasts_forever_and_keys_never_collide() -> None:
    clock = Clock()
    pool = ProxyPool("s", "sticky", endpoints(3), sticky=StickyConfig("job"))
    sel = selector(pool, rand=Rand(1, 2), clock=clock)
    a = await sel.select(SelectRequest("s", job_id="abc"))
    b = await sel.select(SelectRequest("s", sticky_key="abc"))
    assert (a.sticky_key, b.sticky_key) == ("job:abc", "key:abc")
    assert a.index != b.index
    clock.now += 10**12
    assert (await sel.select(SelectRequest("s", job_id="abc"))).index == a.index


@pytest.mark.anyio
async def test_sticky_requires_a_key() -> None:
    pool = ProxyPool("s", "sticky", endpoints(3), sticky=StickyConfig("domain"))
    sel = selector(pool)
    with pytest.raises(ProxyError, match=r"^sticky selection requires a sticky key$"):
        await sel.select(SelectRequest("s", job_id="j"))
    # without a sticky config the job id is the key
    plain = selector(ProxyPool("p", "sticky", endpoints(3)))
    assert (await plain.select(SelectRequest("p", job_id="j"))).sticky_key == "job:j"


def test_sticky_expiry_is_clamped() -> None:
    pool = ProxyPool("s", "sticky", endpoints(3), sticky=StickyConfig("job", ttl_ms=10**20))
    req = StrategyRequest("sticky", sticky_key="job:x")
    _, state = apply_operation(None, pool, req, NOW, 1, builtin_strategies()["sticky"])
    assert state is not None
    assert state["sticky"]["job:x"]["expires_at_ms"] == MAX_EXPIRES_MS


# ----------------------------------------------------------------------------------------------- rotation (§8)


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", ["round_robin", "random", "sticky"])
async def test_rotation_always_changes_and_counts(strategy: str) -> None:
    pool = ProxyPool("p", strategy, endpoints(3), recency_window=2 if strategy == "random" else None)
    sel = selector(pool, rand=Rand(0, 1, 2, 3, 4, 5, 6))
    current = await sel.select(SelectRequest("p", job_id="run-1"))
    for i in range(1, 10):
        rotation = await sel.rotate_selection(current)
        assert rotation.changed is True
        assert rotation.index != current.index
        assert rotation.rotations == i
        current = rotation.as_selection()
    state = await sel.store.read(pool)
    assert (state["selections"], state["rotations"]) == (1, 9)
    if strategy == "sticky":
        assert state["sticky"]["job:run-1"]["index"] == current.index


@pytest.mark.anyio
async def test_round_robin_rotation_advances_past_current() -> None:
    sel = selector(ProxyPool("rr", "round_robin", endpoints(3)))
    first = await sel.select(SelectRequest("rr"))  # 0, rr_index -> 1
    assert first.index == 0
    rotation = await sel.rotate("rr", 1)  # rr points at the current one: skip it
    assert rotation.index == 2
    assert (await sel.select(SelectRequest("rr"))).index == 0


@pytest.mark.anyio
async def test_random_rotation_avoids_recent_then_marks() -> None:
    pool = ProxyPool("r", "random", endpoints(4), recency_window=2)
    sel = selector(pool, rand=Rand(0))
    assert await picks(sel, "r", 2) == [0, 1]
    rotation = await sel.rotate("r", 1)
    assert rotation.index == 2
    assert (await sel.store.read(pool))["recent"] == [1, 2]


def test_plugin_strategy_without_rotate_picks_among_others() -> None:
    class AlwaysZero:
        def choose(self, pool, state, request, now_ms, rand):  # type: ignore[no-untyped-def]
            return 0, state

    pool = ProxyPool("p", "zero", endpoints(3))
    result, state = apply_operation(None, pool, StrategyRequest("zero", current_index=0), NOW, 1, AlwaysZero())
    assert (result.index, result.changed, result.rotations) == (2, True, 1)
    assert state is not None


# ----------------------------------------------------------------------------------------------- fingerprint


@pytest.mark.anyio
async def test_changed_pool_resets_state_with_warning() -> None:
    store = MemoryStateStore()
    old = ProxyPool("p", "round_robin", endpoints(3))
    sel = ProxySelector({"p": old}, store)
    await picks(sel, "p", 2)
    new = ProxyPool("p", "round_robin", endpoints(4))
    sel2 = ProxySelector({"p": new}, store)
    selection = await sel2.select(SelectRequest("p"))
    assert selection.index == 0
    assert selection.warnings == ("Warning: proxy pool p changed; selection state reset",)
    assert (await sel2.select(SelectRequest("p"))).warnings == ()


def test_fingerprint_ignores_password() -> None:
    a = ProxyPool("p", "random", [ProxyEndpoint("http", "h", 1, "u", "one")])
    b = ProxyPool("p", "random", [ProxyEndpoint("http", "h", 1, "u", "two")])
    assert a.fingerprint == b.fingerprint
    assert fresh_state(a.fingerprint)["fingerprint"] == a.fingerprint


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_unknown_strategy_override_fails() -> None:
    sel = selector(ProxyPool("p", "random", endpoints(2)))

    async def main() -> None:
        with pytest.raises(ProxyError, match='unknown proxy strategy "nope"'):
            await sel.select(SelectRequest("p", strategy_override="nope"))
        with pytest.raises(ProxyError, match='unknown proxy pool "zzz"'):
            await sel.select(SelectRequest("zzz"))

    anyio.run(main)
