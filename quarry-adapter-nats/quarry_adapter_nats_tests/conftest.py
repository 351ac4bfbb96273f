"""NATS with JetStream at 127.0.0.1:4222 (``QUARRY_TEST_NATS_URL`` overrides): skipped with a reason locally when
it is not reachable, a failure under ``CI=true`` (where ``.ci/run`` starts it)."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

NATS_URL = os.environ.get("QUARRY_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _reachable(url: str) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=1):
            return None
    except OSError as exc:
        return f"NATS is not reachable at {url}: {exc}"


def require_nats() -> str:
    """The NATS URL; skips the test (printing why) when NATS is down, fails it under ``CI=true``."""
    problem = _reachable(NATS_URL)
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem} (CI=true: .ci/run must start NATS with JetStream)")
        print(f"SKIP: {problem}")
        pytest.skip(problem)
    return NATS_URL


@pytest.fixture(scope="session")
def nats_url() -> str:
    return require_nats()


@pytest.fixture
def subject() -> str:
    """A subject unique to the test (``quarry.test.<hex>``)."""
    return f"quarry.test.{uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
