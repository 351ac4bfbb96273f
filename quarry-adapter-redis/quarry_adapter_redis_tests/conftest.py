"""Redis at 127.0.0.1:6379 (``QUARRY_TEST_REDIS_URL`` overrides): skipped with a reason locally when it is not
reachable, a failure under ``CI=true`` (where ``.ci/run`` starts it)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("QUARRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return None
    except OSError as exc:
        return f"Redis is not reachable at {url}: {exc}"


def require_redis() -> str:
    """The Redis URL; skips the test (printing why) when Redis is down, fails it under ``CI=true``."""
    problem = _reachable(REDIS_URL)
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem} (CI=true: .ci/run must start Redis)")
        print(f"SKIP: {problem}")
        pytest.skip(problem)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def key() -> Iterator[str]:
    """A stream/channel name unique to the test; the stream is deleted afterwards."""
    import redis

    name = f"quarry-test:{uuid.uuid4().hex}"
    yield name
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
        client.delete(name)
        client.close()
    except Exception:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
