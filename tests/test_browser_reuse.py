"""Browser provisioning end to end (CONTRACT_RUN §3.1): the reuse server shared across ``quarry run`` invocations and
stopping itself when idle, stale discovery files, ``--no-browser-reuse``, and explicit CDP endpoints (health gate).

Real Chromium, real ``quarry run`` subprocesses; each test has its own discovery directory (``XDG_RUNTIME_DIR``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from e2e_helpers import ROOT, SCRIPTS, descendants, final_run_record, finish_run, run_id_from


def _env(runtime_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QUARRY_NO_BROWSER_REUSE", "QUARRY_BROWSER_ENDPOINT")}
    env.update(XDG_RUNTIME_DIR=str(runtime_dir), **extra)
    return env


def _quarry(
    storage: Path, env: dict[str, str], *args: str, watch: bool = False
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``quarry run`` to its end; with ``watch``, also the names of every process it had as a descendant."""
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", *args, "--storage-path", str(storage)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    names: set[str] = set()
    while watch and proc.poll() is None:
        for child in descendants(proc.pid):
            try:
                names.add(" ".join(child.cmdline()[:2]))
            except psutil.Error:
                pass
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), names


def _discovery(runtime_dir: Path) -> dict[str, Any]:
    return json.loads((runtime_dir / "quarry" / "browser.json").read_text())


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def servers() -> Iterator[list[int]]:
    """Pids of reuse servers a test started: stopped (SIGKILL to the group) if still alive at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _gone(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def test_second_invocation_reuses_the_server_which_stops_itself_when_idle(
    tmp_path: Path, site_url: str, servers: list[int]
) -> None:
    temp = tmp_path / "tmp"  # the temporary directory of every process involved
    temp.mkdir()
    env = _env(tmp_path, QUARRY_BROWSER_IDLE_TIMEOUT="4", TMPDIR=str(temp))
    job = json.dumps({"url": f"{site_url}/index.html"})
    first, _ = _quarry(tmp_path / "data", env, str(SCRIPTS / "ok.py"), "--job", job)
    assert first.returncode == 0, first.stderr
    record = _discovery(tmp_path)
    pid = record["pid"]
    servers.append(pid)
    assert record["ws_endpoint"].startswith("ws://127.0.0.1:") and os.path.isfile(record["executable"])
    assert (tmp_path / "quarry" / "browser.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "quarry").stat().st_mode & 0o777 == 0o700
    server = psutil.Process(pid)
    assert "--browser-server" in server.cmdline() and os.getpgid(pid) == pid  # detached, its own group
    assert any("chrom" in c.name() for c in server.children()), "the server runs Chromium"

    # the second invocation attaches to the same server: no Chromium of its own, same pid, one launch in all
    second, names = _quarry(tmp_path / "data", env, str(SCRIPTS / "ok.py"), "--job", job, watch=True)
    assert second.returncode == 0, second.stderr
    assert f"Reusing browser server (pid={pid}, age=" in second.stderr
    assert _discovery(tmp_path)["pid"] == pid
    assert not [n for n in names if "chrom" in n], f"the second run started a browser: {names}"
    rows = final_run_record(tmp_path / "data", run_id_from(second.stdout))
    assert rows["outcome"] == "success"
    # the runs' Playwright drivers delete the folders they made for their connections to the server
    assert list(temp.glob("playwright-artifacts-*")) == []
    assert [p.name.split("-")[3] for p in temp.glob("quarry-browser-profile-*")] == [str(pid)]

    # idle: polls every 5 s, idle from the first empty poll, timeout 4 s -> gone within ~10 s; it cleans up
    assert _wait_gone(pid, 25), "the reuse server did not stop itself when idle"
    assert not (tmp_path / "quarry" / "browser.json").exists()
    log = (tmp_path / "quarry" / "browser-server.log").read_text()
    assert "Browser server idle for" in log and "shutting down" in log
    assert list(temp.iterdir()) == []  # the server deleted its profile


def test_no_browser_reuse_leaves_nothing_behind(tmp_path: Path, site_url: str) -> None:
    env = _env(tmp_path)
    job = json.dumps({"url": f"{site_url}/index.html"})
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", str(SCRIPTS / "ok.py"), "--job", job, "--no-browser-reuse"]
    proc = subprocess.Popen(
        [*cmd, "--storage-path", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    seen: set[int] = set()
    while proc.poll() is None:
        seen.update(c.pid for c in descendants(proc.pid))
        time.sleep(0.05)
    code, _out, err = finish_run(proc, seen)
    assert code == 0, err
    assert not (tmp_path / "quarry" / "browser.json").exists()


def test_stale_discovery_files_are_replaced_and_only_a_server_is_killed(tmp_path: Path, servers: list[int]) -> None:
    from quarry_core.runtime.browser import acquire_reuse_server_sync

    directory = tmp_path / "quarry"
    directory.mkdir(mode=0o700)
    discovery = directory / "browser.json"
    command = [sys.executable, "-m", "quarry_executor"]
    sleeper = "import time; time.sleep(120)"
    # a hung "server" (its own group, --browser-server on its command line) that answers no health check
    hung = subprocess.Popen([sys.executable, "-c", sleeper, "--browser-server"], start_new_session=True)
    # an unrelated process that happens to have a recycled pid: never killed
    bystander = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)
    try:
        for stale in (hung, bystander):
            discovery.write_text(json.dumps({"ws_endpoint": "ws://127.0.0.1:9/devtools/browser/x", "pid": stale.pid}))
            server = acquire_reuse_server_sync(command, directory=directory, idle_timeout=30)
            servers.append(server.pid)
            assert server.launched and server.pid != stale.pid
            assert _discovery(tmp_path)["pid"] == server.pid
            # the healthy server is reused, not launched again
            again = acquire_reuse_server_sync(command, directory=directory)
            assert (again.pid, again.launched) == (server.pid, False)
            os.killpg(server.pid, signal.SIGTERM)  # SIGTERM: the same clean shutdown as when idle
            assert _wait_gone(server.pid, 10) and not discovery.exists()
        assert hung.wait(5) == -signal.SIGKILL
        assert bystander.poll() is None, "a process without --browser-server was killed"
        # the pid of a process that is gone: the file is deleted and a server launched
        discovery.write_text(json.dumps({"ws_endpoint": "ws://127.0.0.1:9/x", "pid": hung.pid}))
        server = acquire_reuse_server_sync(command, directory=directory, idle_timeout=30)
        servers.append(server.pid)
        assert server.launched and _discovery(tmp_path)["pid"] == server.pid
    finally:
        for p in (hung, bystander):
            if p.poll() is None:
                p.kill()
                p.wait(5)


def test_external_endpoint_is_health_checked_used_and_never_closed(
    tmp_path: Path, site_url: str, servers: list[int]
) -> None:
    # an external browser: a reuse server started by hand, without a discovery file
    browser = subprocess.Popen(
        [sys.executable, "-m", "quarry_executor", "--browser-server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "QUARRY_BROWSER_IDLE_TIMEOUT": "120"},
        start_new_session=True,
    )
    servers.append(browser.pid)
    assert browser.stdout is not None
    ws = browser.stdout.readline().decode().strip()
    assert ws.startswith("ws://127.0.0.1:")
    http = "http://" + ws.split("://", 1)[1].split("/", 1)[0]
    env = _env(tmp_path)
    job = json.dumps({"url": f"{site_url}/index.html"})
    for how in (["--browser-ws-endpoint", ws], []):  # the flag (ws://), then QUARRY_BROWSER_ENDPOINT (http://)
        run_env = env if how else {**env, "QUARRY_BROWSER_ENDPOINT": http}
        res, names = _quarry(tmp_path / "data", run_env, str(SCRIPTS / "ok.py"), "--job", job, *how, watch=True)
        assert res.returncode == 0, res.stderr
        assert not [n for n in names if "chrom" in n or "--browser-server" in n], names
        assert browser.poll() is None, "quarry run closed an external browser"
    assert not (tmp_path / "quarry" / "browser.json").exists(), "an explicit endpoint bypasses the reuse server"
    browser.send_signal(signal.SIGTERM)
    assert browser.wait(10) == 0

    # unreachable: executor_crash with the contract's message, exit 2, run record written, no executor started
    dead = "ws://127.0.0.1:9/devtools/browser/gone"
    res, names = _quarry(
        tmp_path / "data", env, str(SCRIPTS / "ok.py"), "--job", job, "--browser-ws-endpoint", dead, watch=True
    )
    assert res.returncode == 2, res.stderr
    assert "Outcome: executor_crash" in res.stdout
    record = final_run_record(tmp_path / "data", run_id_from(res.stdout))
    assert record["outcome"] == "executor_crash"
    assert record["message"].startswith(f"browser endpoint unreachable: {dead}: "), record["message"]
    assert "refused" in record["message"].lower()
    assert not [n for n in names if "quarry_executor" in n], names


def test_bad_endpoint_scheme_is_a_usage_error(tmp_path: Path) -> None:
    env = _env(tmp_path)
    res, _ = _quarry(tmp_path / "data", env, str(SCRIPTS / "ok.py"), "--browser-ws-endpoint", "ftp://127.0.0.1:9")
    assert res.returncode == 4
    assert "scheme must be ws, wss, http or https" in res.stderr
    assert not (tmp_path / "data").exists()


def test_warm_crawl_keeps_browsers_per_process_or_attaches_to_an_explicit_endpoint(
    tmp_path: Path, site_url: str, servers: list[int]
) -> None:
    listing = str(SCRIPTS / "fanout_listing.py")
    env = _env(tmp_path)
    job = json.dumps({"url": f"{site_url}/index.html"})
    crawl = ["--job", job, "--depth", "1", "--max-runs", "20", "--parallel", "2", "--report"]
    # reuse on (the default): a warm pool still gives every executor its own browser, and no server is started
    res, names = _quarry(tmp_path / "a", env, listing, *crawl, str(tmp_path / "a.json"), watch=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "a.json").read_text())["fan_out"]["runs_succeeded"] == 12
    assert not (tmp_path / "quarry" / "browser.json").exists()
    assert [n for n in names if "chrom" in n] and not [n for n in names if "--browser-server" in n]

    # an explicit endpoint: the pool's processes attach to it (no Chromium of their own) and leave it running
    browser = subprocess.Popen(
        [sys.executable, "-m", "quarry_executor", "--browser-server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "QUARRY_BROWSER_IDLE_TIMEOUT": "120"},
        start_new_session=True,
    )
    servers.append(browser.pid)
    assert browser.stdout is not None
    ws = browser.stdout.readline().decode().strip()
    args = [*crawl, str(tmp_path / "b.json"), "--browser-ws-endpoint", ws]
    res, names = _quarry(tmp_path / "b", env, listing, *args, watch=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "b.json").read_text())["fan_out"]["runs_succeeded"] == 12
    assert not [n for n in names if "chrom" in n], names
    assert browser.poll() is None
    browser.send_signal(signal.SIGTERM)
    assert browser.wait(10) == 0


def test_zombie_server_is_reaped_and_the_chromium_it_left_is_killed(tmp_path: Path, servers: list[int]) -> None:
    from quarry_core.runtime.browser import acquire_reuse_server_sync

    directory = tmp_path / "quarry"
    directory.mkdir(mode=0o700)
    # a "server" that died hard: it exits at once (a zombie until its parent, this process, reaps it) and leaves a
    # "Chromium" (a sleeper carrying the server's profile flag) behind in its process group
    orphan = "--user-data-dir=/tmp/quarry-browser-profile-test"
    code = (
        "import subprocess, sys, os\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', {orphan!r}])\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    dead = subprocess.Popen(
        [sys.executable, "-c", code, "--browser-server"], stdout=subprocess.PIPE, start_new_session=True
    )
    assert dead.stdout is not None
    left = int(dead.stdout.readline())
    deadline = time.monotonic() + 10
    while psutil.Process(dead.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert psutil.Process(dead.pid).status() == psutil.STATUS_ZOMBIE
    (directory / "browser.json").write_text(json.dumps({"ws_endpoint": "ws://127.0.0.1:9/x", "pid": dead.pid}))
    try:
        server = acquire_reuse_server_sync([sys.executable, "-m", "quarry_executor"], directory=directory)
        servers.append(server.pid)
        assert server.launched and _discovery(tmp_path)["pid"] == server.pid
        assert _wait_gone(left, 5), "the Chromium left by the dead server was not killed"
        assert _gone(dead.pid)
    finally:
        if not _gone(left):
            os.kill(left, signal.SIGKILL)


def test_runs_with_different_proxies_share_the_reuse_server(tmp_path: Path, site_url: str, servers: list[int]) -> None:
    from proxy_helpers import forward_proxies

    password = "pw-Reuse-7"
    script = tmp_path / "page.py"
    script.write_text(
        "async def run(ctx):\n"
        "    await ctx.page.goto(ctx.job['url'])\n"
        "    await ctx.emit.item(item_type='page', data={'title': await ctx.page.title()})\n"
    )
    url = f"http://shop.quarry.test:{site_url.rsplit(':', 1)[1]}/index.html"  # only the test proxy resolves it
    env = _env(tmp_path, QUARRY_TEST_PROXY_PW=password, XDG_STATE_HOME=str(tmp_path / "state"))
    with forward_proxies(["a", "b"], password) as proxies:
        config = tmp_path / "quarry.toml"
        endpoints = ", ".join(
            f'{{ protocol = "http", host = "127.0.0.1", port = {proxies.ports[n]}, username = "{proxies.username}", '
            'password = "${QUARRY_TEST_PROXY_PW}" }'
            for n in ("a", "b")
        )
        config.write_text(
            f'[proxies.shop]\nstrategy = "round_robin"\nendpoints = [{endpoints}]\n[proxy]\npool = "shop"\n'
        )
        pids = []
        for _ in range(2):
            res, _names = _quarry(
                tmp_path / "data", env, str(script), "--config", str(config), "--job", json.dumps({"url": url})
            )
            assert res.returncode == 0, res.stderr
            pids.append(_discovery(tmp_path)["pid"])
        served = [a.endpoint for a in proxies.served("/index.html")]
    servers.append(pids[0])
    assert served == ["a", "b"]  # each run's context went through its own endpoint
    assert pids[0] == pids[1]  # in one shared browser (upstream started a browser per proxy)
    assert password not in (tmp_path / "quarry" / "browser.json").read_text()


def test_a_run_with_other_launch_settings_gets_its_own_browser_and_leaves_the_server(
    tmp_path: Path, site_url: str, servers: list[int]
) -> None:
    """The server records the browser launch settings it started with (``launch``): a run asking for another
    executable does not attach to it (it would silently get the other binary), warns, and launches its own."""
    from quarry_core.runtime.browser import BrowserReuseError, acquire_reuse_server_sync

    env = _env(tmp_path, QUARRY_BROWSER_IDLE_TIMEOUT="60")
    env.pop("QUARRY_BROWSER_EXECUTABLE", None)
    env.pop("QUARRY_HEADLESS", None)
    job = json.dumps({"url": f"{site_url}/index.html"})
    first, _ = _quarry(tmp_path / "data", env, str(SCRIPTS / "ok.py"), "--job", job)
    assert first.returncode == 0, first.stderr
    record = _discovery(tmp_path)
    servers.append(record["pid"])
    assert record["launch"] == {"QUARRY_BROWSER_EXECUTABLE": None, "QUARRY_HEADLESS": None, "QUARRY_NO_SANDBOX": None}

    # the same binary under another name is another setting: no reuse, a warning, the run's own Chromium
    alias = tmp_path / "bin" / "my-chromium"
    alias.parent.mkdir()
    alias.symlink_to(record["executable"])
    other = {**env, "QUARRY_BROWSER_EXECUTABLE": str(alias)}
    second, names = _quarry(tmp_path / "data", other, str(SCRIPTS / "ok.py"), "--job", job, watch=True)
    assert second.returncode == 0, second.stderr
    assert "Warning: Browser reuse unavailable: the browser server (pid=" in second.stderr
    assert f"QUARRY_BROWSER_EXECUTABLE unset (this run: QUARRY_BROWSER_EXECUTABLE={alias})" in second.stderr
    assert [n for n in names if "chrom" in n or "my-chromium" in n], "the run did not launch its own browser"
    assert final_run_record(tmp_path / "data", run_id_from(second.stdout))["outcome"] == "success"
    assert _discovery(tmp_path)["pid"] == record["pid"] and not _gone(record["pid"])  # the server stays

    # the acquire itself, under the lock: refused without a lease; matching settings reuse
    directory = tmp_path / "quarry"
    before = (directory / "browser.json").stat().st_mtime_ns
    command = [sys.executable, "-m", "quarry_executor"]
    with pytest.raises(BrowserReuseError, match=r"QUARRY_HEADLESS unset \(this run: QUARRY_HEADLESS=0\)"):
        acquire_reuse_server_sync(command, {**env, "QUARRY_HEADLESS": "0"}, directory=directory)
    assert (directory / "browser.json").stat().st_mtime_ns == before
    again = acquire_reuse_server_sync(command, {**env, "QUARRY_HEADLESS": ""}, directory=directory)  # empty = unset
    assert (again.pid, again.launched) == (record["pid"], False)
