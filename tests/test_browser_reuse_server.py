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
from quarry_executor.browser_server import (
    PROFILE_PREFIX,
    STALE_UNNAMED_PROFILE_AGE,
    busy_pages,
    idle_timeout,
    sweep_stale_profiles,
)


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


def _start_server(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m quarry_executor --browser-server`` in a session of its own, stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "quarry_executor", "--browser-server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )


def test_server_exits_1_and_cleans_up_when_chromium_dies(tmp_path: Path) -> None:
    discovery = tmp_path / "browser.json"
    env = {**os.environ, "QUARRY_BROWSER_DISCOVERY_FILE": str(discovery), "QUARRY_BROWSER_IDLE_TIMEOUT": "120"}
    server = _start_server(env)
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


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not psutil.pid_exists(proc.pid)
    return proc.pid


def test_sweep_deletes_only_profiles_of_dead_servers_and_unheld_old_ones(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    host = os.uname().nodename
    old = time.time() - STALE_UNNAMED_PROFILE_AGE - 60

    def profile(name: str, *, lock: str | None = None, mtime: float | None = None) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "Default").mkdir()
        (d / "Default" / "Preferences").write_text("{}")
        if lock is not None:
            (d / "SingletonLock").symlink_to(lock)
        if mtime is not None:
            os.utime(d, (mtime, mtime))
        return d

    gone = [
        profile(f"{PROFILE_PREFIX}{dead}-a1b2c3"),  # its server was killed
        profile(f"{PROFILE_PREFIX}{dead}-d4e5f6", lock=f"{host}-{dead}"),  # and so was its Chromium
        profile(f"{PROFILE_PREFIX}x7y8z9ab", mtime=old),  # an old unnamed one nobody holds
        profile(f"{PROFILE_PREFIX}q1w2e3r4", lock=f"{host}-{dead}", mtime=old),
    ]
    kept = [
        profile(f"{PROFILE_PREFIX}{live}-g7h8i9"),  # its server is alive
        profile(f"{PROFILE_PREFIX}{dead}-j0k1l2", lock=f"{host}-{live}"),  # a live Chromium holds it
        profile(f"{PROFILE_PREFIX}m3n4o5p6"),  # unnamed but recent: may be starting right now
        profile(f"{PROFILE_PREFIX}s5d6f7g8", lock=f"{host}-{live}", mtime=old),  # unnamed, held
        profile(f"playwright-artifacts-{dead}-abc"),  # not ours
    ]
    (tmp_path / f"{PROFILE_PREFIX}{dead}-file").write_text("not a directory")

    removed = sweep_stale_profiles(str(tmp_path))

    assert sorted(removed) == sorted(str(p) for p in gone)
    assert not any(p.exists() for p in gone)
    assert all(p.is_dir() for p in kept)
    assert (tmp_path / f"{PROFILE_PREFIX}{dead}-file").is_file()
    assert sweep_stale_profiles(str(tmp_path)) == []
    assert sweep_stale_profiles(str(tmp_path / "missing")) == []


def test_a_starting_server_deletes_profiles_left_by_killed_servers(tmp_path: Path) -> None:
    """Killed with its Chromium (SIGKILL to the group), a server leaves its profile; the next one deletes it."""
    discovery = tmp_path / "run" / "browser.json"
    discovery.parent.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(temp),
        "QUARRY_BROWSER_DISCOVERY_FILE": str(discovery),
        "QUARRY_BROWSER_IDLE_TIMEOUT": "120",
    }

    def start() -> subprocess.Popen[bytes]:
        server = _start_server(env)
        assert server.stdout is not None
        assert server.stdout.readline().startswith(b"ws://")
        return server

    first = start()
    profiles = list(temp.glob(f"{PROFILE_PREFIX}*"))
    assert [p.name.split("-")[3] for p in profiles] == [str(first.pid)]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(5)
    deadline = time.monotonic() + 10
    while _in_use(profiles[0].name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert profiles[0].is_dir()  # nothing cleaned up after a SIGKILL

    second = start()
    try:
        assert not profiles[0].exists()
        assert [p.name.split("-")[3] for p in temp.glob(f"{PROFILE_PREFIX}*")] == [str(second.pid)]
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(15)
    assert second.stderr is not None
    assert f"deleted 1 browser profile(s) left by killed servers: {profiles[0]}" in second.stderr.read().decode()
    assert list(temp.glob(f"{PROFILE_PREFIX}*")) == []


def _in_use(name: str) -> bool:
    """Whether a live process names ``name`` on its command line."""
    return any(
        p.info["status"] != psutil.STATUS_ZOMBIE and name in " ".join(p.info["cmdline"] or ())
        for p in psutil.process_iter(["cmdline", "status"])
    )
