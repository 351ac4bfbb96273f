"""Shared fixtures for quarry_lode tests: real files under tmp_path, no mocks."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from quarry_core.interfaces import RunPartition, StorageConfig
from quarry_core.protocol.frames import Event
from quarry_lode.backend import LodeBackend, make_backend

_counter = itertools.count(1)


@pytest.fixture
def make_event() -> Callable[..., Event]:
    """``make_event(seq, type="item", payload=None, run_id="r1", ts=...)``."""

    def build(
        seq: int,
        type: str = "item",
        payload: dict[str, Any] | None = None,
        run_id: str = "r1",
        ts: str = "2026-11-25T10:00:00.000Z",
    ) -> Event:
        if payload is None:
            payload = (
                {"level": "info", "message": f"log {seq}"}
                if type == "log"
                else {"item_type": "product", "data": {"n": seq}}
            )
        return Event(event_id=str(uuid.uuid4()), run_id=run_id, seq=seq, type=type, ts=ts, payload=payload)

    return build


@pytest.fixture
def partition() -> RunPartition:
    return RunPartition(source="shop/eu", category="default", day="2026-11-25", run_id="r1")


@pytest.fixture
def backend_factory(tmp_path: Any) -> Callable[..., LodeBackend]:
    """``backend_factory(codec="parquet", compression=None, path=None)`` on a fresh local root."""

    def build(codec: str = "parquet", compression: str | None = None, path: str | None = None) -> LodeBackend:
        root = path if path is not None else str(tmp_path / f"data{next(_counter)}")
        return make_backend(StorageConfig(path=root, codec=codec, compression=compression))

    return build


@pytest.fixture
def memory_url() -> str:
    """A fresh ``memory://`` root (the memory filesystem is process-global)."""
    return f"memory://lode-test-{uuid.uuid4().hex}"
