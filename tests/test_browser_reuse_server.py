"""The browser reuse server on its own (``python -m quarry_executor --browser-server``) and the provisioning helpers:
idle accounting, what counts as a page in use, the endpoint forms, and the server's exit when Chromium dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from quarry_core.runtime.browser import BrowserEndpointError, check_endpoint_sync, http_form, reuse_directory
from quarry_executor.browser_server import busy_pages, idle_timeout


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 60.0), ("5", 5.0), ("0.5", 0.5), ("0", 60.0), ("-3", 60.0), ("soon", 60.0), ("nan", 60.0), ("inf", 60.0)],
)
def test_idle_timeout_is_positive_seconds_else_sixty(value: str, expected: float) -> None:
    assert idle_timeout({"QUARRY_BROWSER_IDLE_TIMEOUT": value}) == expected


def test_pages_in_use_are_pages_away_from_about_blank() -> None:
    targets = [
        {"type": "page", "url": "about:blank"},
        {"type": "page", "url": "http://127.0.0.1/a"},
        {"type": "service_worker", "url": "http://127.0.0.1/sw.js"},
        {"type": "page", "url": "data:text/html,x"},
    ]
    assert busy_pages(targets) == 2
    assert busy_pages([]) == 0
    with pytest.raises(ValueError, match="list"):
        busy_pages({"type": "page"})


def test_endpoint_forms_and_directory(tmp_path: Path) -> None:
    assert http_form("ws://127.0.0.1:9222/devtools/browser/abc") == "http://127.0.0.1:9222"
    assert http_form("wss://h.example:443/devtools/browser/abc") == "https://h.example:443"
    assert http_form("http://127.0.0.1:9222/") == "http://127.0.0.1:9222"
    assert reuse_directory({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "quarry"
    fallback = reuse_directory({"XDG_RUNTIME_DIR": str(tmp_path / "missing")})
    assert fallback.name == f"quarry-{os.getuid()}"
    with pytest.raises(BrowserEndpointError, match=r"^browser endpoint unreachable: ws://127\.0\.0\.1:9/x: "):
        check_endpoint_sync("ws://127.0.0.1:9/x")


def test_server_exits_1_and_cleans_up_when_chromium_dies(tmp_path: Path) -> None:
    discovery = tmp_path / "browser.json"
    env = {**os.environ, "QUARRY_BROWSER_DISCOVERY_FILE": str(discovery), "QUARRY_BROWSER_IDLE_TIMEOUT": "120"}
    server = subprocess.Popen(
        [sys.executable, "-m", "quarry_executor", "--browser-server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        ws = server.stdout.readline().decode().strip()
        record = json.loads(discovery.read_text())
        assert record["ws_endpoint"] == ws and record["pid"] == server.pid
        assert check_endpoint_sync(ws)["webSocketDebuggerUrl"] == ws  # the health gate's view of it
        profile = next(
            a.split("=", 1)[1]
            for c in psutil.Process(server.pid).children()
            for a in c.cmdline()
            if a.startswith("--user-data-dir=")
        )
        assert Path(profile).is_dir()
        for child in psutil.Process(server.pid).children():
            child.send_signal(signal.SIGKILL)
        assert server.wait(15) == 1
        assert not discovery.exists() and not Path(profile).exists()
        assert server.stderr is not None
        assert b"Chromium exited" in server.stderr.read()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)

    def leftovers() -> list[int]:
        return [
            p.pid
            for p in psutil.process_iter(["cmdline", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and profile in " ".join(p.info["cmdline"] or ())
        ]

    deadline = time.monotonic() + 5
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers() == [], "Chromium processes of the server outlived it"
