from __future__ import annotations

from typing import Any

from quarry_core.interfaces import PolicyConfig
from quarry_core.testing.fakes import MemorySink, policy_context
from quarry_policy_buffered import BufferedPolicy, StreamingPolicy


class Sleeps:
    """A recording, instant ``sleep`` for retry backoff."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def buffered(sink: MemorySink, sleep: Sleeps | None = None, **settings: Any) -> BufferedPolicy:
    return BufferedPolicy(
        PolicyConfig(name="buffered", **settings),
        sink,
        policy_context("buffered"),
        sleep=sleep if sleep is not None else Sleeps(),
    )


def streaming(sink: MemorySink, sleep: Sleeps | None = None, **settings: Any) -> StreamingPolicy:
    caps = {k: settings.pop(k) for k in ("item_cap", "byte_cap") if k in settings}
    return StreamingPolicy(
        PolicyConfig(name="streaming", **settings),
        sink,
        policy_context("streaming"),
        sleep=sleep if sleep is not None else Sleeps(),
        **caps,
    )
