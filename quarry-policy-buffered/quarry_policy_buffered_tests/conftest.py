from __future__ import annotations

from collections.abc import Iterator

import pytest

from quarry_core.testing.fakes import LogCapture, capture_logs


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    with capture_logs("quarry_policy_buffered") as capture:
        yield capture
