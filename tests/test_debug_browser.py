"""``quarry debug browser`` (CONTRACT_CLI): the real executor reports the browser it would launch, and the reuse
server's discovery file is read without touching the server; health is a real ``/json/version`` request."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import ROOT


def _debug_browser(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "quarry_core.cli", "debug", "browser", "--format", "json", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=180,
    )  # fmt: skip
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, data, proc.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    runtime_dir = tmp_path / "xdg"
    runtime_dir.mkdir()
    clean = {k: v for k, v in os.environ.items() if k != "QUARRY_BROWSER_EXECUTABLE"}
    return {**clean, "XDG_RUNTIME_DIR": str(runtime_dir)}


@pytest.fixture
def devtools() -> Iterator[tuple[str, http.server.HTTPServer]]:
    """A local server answering ``/json/version`` like a browser's DevTools endpoint."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"Browser": "HeadlessChrome/156", "webSocketDebuggerUrl": "ws://x"}).encode()
            self.send_response(200 if self.path == "/json/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}/devtools/browser/test", server
    finally:
        server.shutdown()
        server.server_close()


def test_reports_the_browser_a_run_would_launch_and_how_it_was_found(env: dict[str, str]) -> None:
    code, data, err = _debug_browser(env)
    assert code == 0, err
    assert list(data) == ["executable", "found_via", "version", "reuse"]
    assert data["found_via"] in ("playwright", "system")
    assert os.access(data["executable"], os.X_OK)
    assert data["version"] and any(ch.isdigit() for ch in data["version"])
    assert data["reuse"] == {
        "directory": str(Path(env["XDG_RUNTIME_DIR"]) / "quarry"),
        "pid": None,
        "ws_endpoint": None,
        "healthy": False,
        "launch": None,
        "launch_matches": None,
    }

    code, chosen, err = _debug_browser({**env, "QUARRY_BROWSER_EXECUTABLE": data["executable"]})
    assert code == 0, err
    assert chosen["found_via"] == "env" and chosen["executable"] == data["executable"]
    assert chosen["version"] == data["version"]


def test_no_usable_browser_exits_1_naming_the_problem(env: dict[str, str], tmp_path: Path) -> None:
    not_exec = tmp_path / "chromium"
    not_exec.write_text("not a browser")
    code, data, err = _debug_browser({**env, "QUARRY_BROWSER_EXECUTABLE": str(not_exec)})
    assert code == 1
    assert data["executable"] is None and data["found_via"] is None
    assert data["error"] == f"QUARRY_BROWSER_EXECUTABLE is not an executable file: {not_exec}"
    assert f"Error: QUARRY_BROWSER_EXECUTABLE is not an executable file: {not_exec}" in err


def test_unknown_executor_is_a_usage_error(env: dict[str, str]) -> None:
    code, data, err = _debug_browser(env, "--executor", "nope")
    assert code == 4 and data == {}
    assert 'unknown executor "nope"' in err


def test_reuse_server_health_is_checked_for_real(
    env: dict[str, str], devtools: tuple[str, http.server.HTTPServer]
) -> None:
    endpoint, server = devtools
    directory = Path(env["XDG_RUNTIME_DIR"]) / "quarry"
    directory.mkdir(mode=0o700)
    discovery = directory / "browser.json"
    discovery.write_text(json.dumps({"pid": os.getpid(), "ws_endpoint": endpoint, "started_at": "x"}))
    code, data, err = _debug_browser(env)
    assert code == 0, err
    assert data["reuse"] == {
        "directory": str(directory),
        "pid": os.getpid(),
        "ws_endpoint": endpoint,
        "healthy": True,
        "launch": None,  # a discovery file without launch settings (an older server)
        "launch_matches": None,
    }
    env.pop("QUARRY_HEADLESS", None)
    env.pop("QUARRY_NO_SANDBOX", None)
    launch = {"QUARRY_BROWSER_EXECUTABLE": None, "QUARRY_HEADLESS": None, "QUARRY_NO_SANDBOX": None}
    discovery.write_text(json.dumps({"pid": os.getpid(), "ws_endpoint": endpoint, "launch": launch}))
    code, data, _ = _debug_browser(env)
    assert (data["reuse"]["launch"], data["reuse"]["launch_matches"]) == (launch, True)
    code, data, _ = _debug_browser({**env, "QUARRY_HEADLESS": "0"})  # this run would launch its own browser
    assert (data["reuse"]["launch"], data["reuse"]["launch_matches"]) == (launch, False)
    discovery.write_text(json.dumps({"pid": os.getpid(), "ws_endpoint": endpoint, "started_at": "x"}))

    server.shutdown()
    server.server_close()  # the pid lives, its endpoint does not answer
    code, data, _ = _debug_browser(env)
    assert data["reuse"]["healthy"] is False and data["reuse"]["pid"] == os.getpid()

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    discovery.write_text(json.dumps({"pid": dead.pid, "ws_endpoint": endpoint}))
    code, data, _ = _debug_browser(env)
    assert data["reuse"]["healthy"] is False and data["reuse"]["pid"] == dead.pid
    assert discovery.exists(), "debug browser must not clean up the discovery file"
