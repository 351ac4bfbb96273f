"""The reuse server's lease (``quarry_executor.browser_server``): a run that finds the server healthy touches the
discovery file under the discovery lock, the server counts that as use, and an idle server retires only under the
same lock, so a run never gets a server that is about to stop. Real Chromium, the server run in-process with a
short poll interval."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest

from quarry_core.runtime.browser import acquire_reuse_server_sync
from quarry_executor import browser_server


async def _until(condition: object, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def test_a_reused_server_stays_up_and_retires_only_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser_server, "POLL_INTERVAL", 0.2)
    monkeypatch.setattr(browser_server, "RETIRE_LOCK_WAIT", 0.5)
    discovery = tmp_path / "browser.json"
    env = {**os.environ, "QUARRY_BROWSER_DISCOVERY_FILE": str(discovery), "QUARRY_BROWSER_IDLE_TIMEOUT": "1"}
    read_end, write_end = os.pipe()

    async def scenario() -> None:
        server = asyncio.create_task(browser_server.run_browser_server(write_end, env))
        await _until(discovery.exists, 60)

        # the runtime's reuse path touches the discovery file (the lease) ...
        before = discovery.stat().st_mtime_ns
        found = await asyncio.to_thread(acquire_reuse_server_sync, ["false"], env, directory=tmp_path)
        assert not found.launched and discovery.stat().st_mtime_ns > before
        # ... and runs reusing it for three idle timeouts keep it up
        for _ in range(15):
            os.utime(discovery)
            await asyncio.sleep(0.2)
        assert not server.done() and discovery.exists()

        # idle, but a run holds the discovery lock: it cannot retire
        lock = os.open(tmp_path / "browser.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            await asyncio.sleep(2.5)
            assert not server.done() and discovery.exists()
        finally:
            os.close(lock)

        # lock released and nobody reuses it: it retires, discovery file first
        assert await asyncio.wait_for(server, 30) == browser_server.EXIT_OK
        assert not discovery.exists()

    try:
        asyncio.run(scenario())
    finally:
        os.close(read_end)
