"""Batchers (runtime.md §17) against small in-memory implementations of the emit and storage APIs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from quarry_core import (
    StoragePutError,
    StoragePutResult,
    TerminalEventError,
    create_batcher,
    create_storage_batcher,
)


class Emit:
    """Records enqueue calls; raises TerminalEventError after ``terminal`` is set, like the executor's emitter."""

    def __init__(self) -> None:
        self.enqueues: list[dict[str, Any]] = []
        self.terminal = False
        self.fail_next: BaseException | None = None

    async def enqueue(self, target: str, params: Any = None, source: Any = None, category: Any = None) -> None:
        if self.terminal:
            raise TerminalEventError("run already terminated")
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        await asyncio.sleep(0)
        self.enqueues.append({"target": target, "params": params, "source": source, "category": category})


class Storage:
    """Stores files in a dict, create-only like Lode; tracks how many puts are in flight."""

    def __init__(self, delay: float = 0.01) -> None:
        self.files: dict[str, bytes] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = delay
        self.started: list[str] = []

    async def put(self, filename: str, data: bytes, content_type: str = "application/octet-stream") -> StoragePutResult:
        self.started.append(filename)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if filename in self.files:
                raise StoragePutError(f"{filename} exists", "path_exists")
            self.files[filename] = bytes(data)
            return StoragePutResult(key=f"files/{filename}")
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("size", [0, -1, True, 2.5, "3"])
def test_size_must_be_a_positive_int(size: Any) -> None:
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        create_batcher(Emit(), size=size, target="t.py")


def test_enqueue_batches_of_size_then_the_rest_on_flush() -> None:
    async def main() -> tuple[Emit, list[int]]:
        emit = Emit()
        batcher = create_batcher(emit, size=50, target="detail.py", source="s", category="c")
        await batcher.flush()  # nothing pending: no event
        pending = []
        for n in range(120):
            await batcher.add(n)
            pending.append(batcher.pending)
        await batcher.flush()
        assert batcher.pending == 0
        return emit, pending

    emit, pending = asyncio.run(main())
    assert [len(e["params"]["items"]) for e in emit.enqueues] == [50, 50, 20]
    assert [n for e in emit.enqueues for n in e["params"]["items"]] == list(range(120))
    assert {(e["target"], e["source"], e["category"]) for e in emit.enqueues} == {("detail.py", "s", "c")}
    assert pending[48:51] == [49, 0, 1]


def test_failed_send_keeps_items_and_terminal_blocks_flush_but_not_add() -> None:
    async def main() -> None:
        emit = Emit()
        batcher = create_batcher(emit, size=3, target="t.py")
        await batcher.add("a")
        emit.fail_next = OSError("pipe closed")
        with pytest.raises(OSError, match="pipe closed"):
            await batcher.flush()
        assert batcher.pending == 1
        await batcher.flush()
        assert emit.enqueues[0]["params"] == {"items": ["a"]}
        emit.terminal = True
        await batcher.add("b")  # below size: buffered
        assert batcher.pending == 1
        with pytest.raises(TerminalEventError):
            await batcher.flush()

    asyncio.run(main())


def test_storage_batcher_bounds_concurrency_and_is_reusable() -> None:
    async def main() -> Storage:
        storage = Storage()
        batcher = create_storage_batcher(storage, concurrency=3)
        futures = [batcher.add(f"f{n}", b"x" * n) for n in range(10)]
        assert batcher.pending == 10
        await batcher.flush()
        assert batcher.pending == 0 and batcher.failed is None
        assert [f.result().key for f in futures] == [f"files/f{n}" for n in range(10)]
        again = batcher.add("g", b"y")  # reusable after a successful flush
        await batcher.flush()
        assert again.result().key == "files/g"
        return storage

    storage = asyncio.run(main())
    assert storage.max_in_flight == 3
    assert storage.started[:10] == [f"f{n}" for n in range(10)]


def test_storage_batcher_fails_fast() -> None:
    async def main() -> None:
        storage = Storage()
        storage.files["dup"] = b"old"
        batcher = create_storage_batcher(storage, concurrency=2)
        bad = batcher.add("dup", b"2")  # fails first, while "a" is still in flight
        ok = batcher.add("a", b"1")
        queued = [batcher.add(f"q{n}", b"3") for n in range(3)]
        with pytest.raises(StoragePutError, match="dup exists") as info:
            await batcher.flush()
        assert ok.result().key == "files/a"  # in flight at the failure: settles on its own
        assert bad.exception() is info.value
        assert all(f.exception() is info.value for f in queued)  # queued ones fail with the first error
        assert not any(name.startswith("q") for name in storage.started)
        late = batcher.add("late", b"4")
        assert late.done() and late.exception() is info.value
        assert batcher.pending == 0
        with pytest.raises(StoragePutError):
            await batcher.flush()  # failed for good

    asyncio.run(main())


def test_concurrency_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="concurrency must be an int >= 1"):
        create_storage_batcher(Storage(), concurrency=0)
