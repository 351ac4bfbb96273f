"""Browser discovery and launch options (runtime.md §11), proxies per context (proxy.md §9), CDP attach."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quarry_core.protocol import ProxyUpdate
from quarry_executor.browser import (
    BrowserNotFoundError,
    find_browser_executable,
    launch_options,
    locate_browser_executable,
    playwright_proxy,
    redact_proxy,
)


def _exe(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, Any]:
    system = [str(tmp_path / "usr/lib/chromium/chromium-headless-shell"), str(tmp_path / "usr/lib/chromium/chromium")]
    return {
        "system_paths": system,
        "bin": tmp_path / "bin",
        "managed": str(tmp_path / "ms-playwright/chrome-linux/chrome"),
        "tmp": tmp_path,
    }


def find(fake: dict[str, Any], env: dict[str, str], managed: bool = True) -> str:
    return find_browser_executable(
        {"PATH": str(fake["bin"]), **env},
        fake["managed"] if managed else None,
        system_paths=fake["system_paths"],
    )


def found_via(fake: dict[str, Any], env: dict[str, str], managed: bool = True) -> str:
    return locate_browser_executable(
        {"PATH": str(fake["bin"]), **env},
        fake["managed"] if managed else None,
        system_paths=fake["system_paths"],
    )[1]


def test_discovery_order(fake: dict[str, Any]) -> None:
    with pytest.raises(BrowserNotFoundError) as info:
        find(fake, {})
    message = str(info.value)
    assert message.startswith("no Chromium executable found (tried: ")
    assert message.endswith('; run "playwright install chromium" or install chromium-headless-shell')
    tried = message[message.index("(tried: ") + 8 : message.index(");")].split(", ")
    assert tried == [
        fake["managed"],
        *fake["system_paths"],
        "chromium-headless-shell",
        "chromium",
        "chromium-browser",
        "google-chrome-stable",
        "google-chrome",
    ]

    chrome = _exe(fake["bin"] / "google-chrome")
    assert find(fake, {}) == chrome
    assert found_via(fake, {}) == "system"
    chromium = _exe(fake["bin"] / "chromium")
    assert find(fake, {}) == chromium
    shell = _exe(fake["bin"] / "chromium-headless-shell")
    assert find(fake, {}) == shell
    system_full = _exe(Path(fake["system_paths"][1]))
    assert find(fake, {}) == system_full
    system_shell = _exe(Path(fake["system_paths"][0]))
    assert find(fake, {}) == system_shell
    assert found_via(fake, {}) == "system"
    managed = _exe(Path(fake["managed"]))
    assert find(fake, {}) == managed
    assert found_via(fake, {}) == "playwright"
    assert find(fake, {}, managed=False) == system_shell
    explicit = _exe(fake["tmp"] / "custom/chrome")
    assert find(fake, {"QUARRY_BROWSER_EXECUTABLE": explicit}) == explicit
    assert found_via(fake, {"QUARRY_BROWSER_EXECUTABLE": explicit}) == "env"


def test_explicit_executable_must_be_executable(fake: dict[str, Any]) -> None:
    path = fake["tmp"] / "not-exec"
    path.write_text("")
    path.chmod(0o644)
    _exe(Path(fake["managed"]))
    with pytest.raises(BrowserNotFoundError, match="QUARRY_BROWSER_EXECUTABLE is not an executable file"):
        find(fake, {"QUARRY_BROWSER_EXECUTABLE": str(path)})


def test_non_executable_candidates_are_skipped(fake: dict[str, Any]) -> None:
    Path(fake["system_paths"][0]).parent.mkdir(parents=True)
    Path(fake["system_paths"][0]).write_text("")  # present but not executable
    shell = _exe(fake["bin"] / "chromium-headless-shell")
    assert find(fake, {}) == shell


def test_launch_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    opts = launch_options("/opt/chrome", {})
    assert opts["executable_path"] == "/opt/chrome"
    assert opts["headless"] is True
    assert opts["args"][0] == "--disable-dev-shm-usage"
    assert "--no-sandbox" not in opts["args"] and opts["chromium_sandbox"] is True
    for flag in ("--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"):
        assert flag in opts["args"]
    assert (opts["handle_sigint"], opts["handle_sigterm"], opts["handle_sighup"]) == (False, False, False)

    opts = launch_options("/opt/chrome", {"QUARRY_NO_SANDBOX": "1", "QUARRY_HEADLESS": "0"})
    assert opts["args"][:2] == ["--disable-dev-shm-usage", "--no-sandbox"]
    assert opts["headless"] is False and opts["chromium_sandbox"] is False

    monkeypatch.setattr(os, "geteuid", lambda: 0)  # root: Chromium's sandbox cannot start
    assert "--no-sandbox" in launch_options("/opt/chrome", {})["args"]


def test_proxy_helpers() -> None:
    full = {"protocol": "http", "host": "p.example", "port": 8080, "username": "u", "password": "s3cret"}
    assert playwright_proxy(full) == {"server": "http://p.example:8080", "username": "u", "password": "s3cret"}
    assert playwright_proxy({"protocol": "socks5", "host": "h", "port": 1}) == {"server": "socks5://h:1"}
    redacted = redact_proxy(full)
    assert redacted is not None and redacted.username == "u" and "s3cret" not in repr(redacted)
    assert redact_proxy(None) is None


@pytest.mark.browser
def test_proxy_per_context_rotation_and_proxy_used(execute: Any) -> None:
    new = {"protocol": "http", "host": "127.0.0.2", "port": 9999, "username": "v", "password": "pw2"}

    def reply(frame: dict[str, Any]) -> ProxyUpdate:
        return ProxyUpdate(run_id=frame["run_id"], seq=frame["seq"], ok=True, changed=True, proxy=new)

    res = execute(
        """
        async def run(ctx):
            before = ctx.proxy
            old_page = ctx.page
            rot = await ctx.emit.rotate_proxy("blocked")
            await ctx.emit.item("proxy", {
                "before": [before.host, before.port, before.username],
                "rotated": rot.rotated,
                "after": [rot.proxy.host, rot.proxy.port, rot.proxy.username],
                "ctx_proxy": ctx.proxy.host,
                "new_page": ctx.page is not old_page,
                "old_closed": old_page.is_closed(),
            })
        """,
        proxy={"protocol": "http", "host": "127.0.0.1", "port": 9, "username": "u", "password": "pw1"},
        proxy_reply=reply,
    )
    assert res.code == 0, res.stderr
    assert res.item("proxy") == {
        "before": ["127.0.0.1", 9, "u"],
        "rotated": True,
        "after": ["127.0.0.2", 9999, "v"],
        "ctx_proxy": "127.0.0.2",
        "new_page": True,
        "old_closed": True,
    }
    assert res.frames[-1]["proxy_used"] == {"protocol": "http", "host": "127.0.0.2", "port": 9999, "username": "v"}
    assert "pw1" not in res.stderr and "pw2" not in res.stderr


@pytest.fixture(scope="module")
def cdp_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Chromium started outside the executor, reachable over CDP."""
    exe = find_browser_executable()
    profile = tmp_path_factory.mktemp("profile")
    proc = subprocess.Popen(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    endpoint = None
    for raw in proc.stderr:
        m = re.search(rb"DevTools listening on (ws://\S+)", raw)
        if m:
            endpoint = m.group(1).decode()
            break
    assert endpoint, "no DevTools endpoint"
    yield proc, endpoint
    proc.kill()
    proc.wait()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.browser
def test_cdp_attach_never_closes_the_external_browser(execute: Any, site: str, cdp_browser: Any) -> None:
    proc, endpoint = cdp_browser
    source = """
    async def run(ctx):
        await ctx.page.goto(ctx.job["url"])
        await ctx.emit.item("t", {"title": await ctx.page.title(), "contexts": len(ctx.browser.contexts)})
    """
    for _ in range(2):
        res = execute(source, job={"url": f"{site}/second.html"}, browser_ws_endpoint=endpoint)
        assert res.code == 0, res.stderr
        assert res.item("t")["title"] == "Second page"
        assert proc.poll() is None, "the external browser must survive the run"


def test_node_compile_cache_defaults_under_the_cache_home_and_respects_the_user() -> None:
    from quarry_executor.browser import use_node_compile_cache

    env = {"HOME": "/home/u"}
    assert use_node_compile_cache(env) == "/home/u/.cache/quarry/node-compile-cache"
    assert env["NODE_COMPILE_CACHE"] == "/home/u/.cache/quarry/node-compile-cache"
    env = {"HOME": "/home/u", "XDG_CACHE_HOME": "/c"}
    assert use_node_compile_cache(env) == "/c/quarry/node-compile-cache"
    env = {"NODE_COMPILE_CACHE": "/mine", "XDG_CACHE_HOME": "/c"}
    assert use_node_compile_cache(env) == "/mine" and env["NODE_COMPILE_CACHE"] == "/mine"
    env = {"NODE_COMPILE_CACHE": ""}  # set but empty: the user turned it off
    assert use_node_compile_cache(env) is None and env == {"NODE_COMPILE_CACHE": ""}
    assert use_node_compile_cache({}) is None


@pytest.mark.browser
def test_the_playwright_driver_fills_the_node_compile_cache(
    execute: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODE_COMPILE_CACHE", raising=False)
    res = execute(
        "async def run(ctx):\n    await ctx.emit.item('row', {'title': await ctx.page.title()})\n",
        env={"XDG_CACHE_HOME": str(tmp_path)},
    )
    assert res.code == 0, res.stderr
    cache = tmp_path / "quarry" / "node-compile-cache"
    assert cache.is_dir() and any(p.is_file() for p in cache.rglob("*"))
