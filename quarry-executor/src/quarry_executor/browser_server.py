"""``python -m quarry_executor --browser-server``: the self-terminating browser reuse server (runtime.md §11).

The runtime (``quarry_core.runtime.browser``) starts it detached, under the discovery lock, with
``QUARRY_BROWSER_DISCOVERY_FILE`` and ``QUARRY_BROWSER_IDLE_TIMEOUT`` set. The server:

1. runs Chromium with ``--remote-debugging-port=0 --remote-debugging-address=127.0.0.1`` and a temporary
   profile, in its own process group (the server is the group leader, so killing the group ends both);
2. writes the discovery file ``{ws_endpoint, pid, executable, started_at}`` (0600, temp + rename) and prints the
   ``ws://`` URL Chromium announced (``DevTools listening on ws://…``) as its first stdout line;
3. polls ``/json/list`` every 5 s (the first poll at once): pages are targets with ``type == "page"`` not at
   ``about:blank``; idle time starts at the first empty poll and resets on pages and whenever a run has reused
   the server since the last poll (the runtime touches the discovery file under the discovery lock: a lease);
   idle ≥ the idle timeout (positive seconds, else 60) → the server takes the discovery lock (skipping this poll
   when it cannot within 2 s), looks for a lease once more, removes the discovery file and only then logs
   ``Browser server idle for Ns, shutting down`` and exits 0, so a run that found it healthy under the lock
   always gets a server that stays up; three failed polls in a row (or Chromium exiting) → exit 1;
   SIGTERM/SIGINT → the same shutdown, exit 0.

Shutting down stops Chromium, removes the discovery file if it still names this pid and deletes the profile.
A server that was killed (SIGKILL, the OOM killer) cannot: the next server to start deletes such leftovers
(:func:`sweep_stale_profiles`). The profile's name carries the server's pid for that.
Proxies are per browser context (proxy.md §9), so runs with any proxy share the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from quarry_core.interfaces import browser_launch_settings
from quarry_executor.browser import find_browser_executable, launch_options, managed_executable_path

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "POLL_INTERVAL",
    "PROFILE_PREFIX",
    "busy_pages",
    "chromium_command",
    "idle_timeout",
    "run_browser_server",
    "sweep_stale_profiles",
    "write_discovery_file",
]

DEFAULT_IDLE_TIMEOUT = 60.0
POLL_INTERVAL = 5.0
POLL_TIMEOUT = 2.0
#: how long an idle server waits for the discovery lock before it retires (else it tries at the next poll)
RETIRE_LOCK_WAIT = 2.0
STARTUP_TIMEOUT = 30.0
MAX_FAILED_POLLS = 3
#: the server's Chromium profile: ``<tempdir>/quarry-browser-profile-<server pid>-<random>``
PROFILE_PREFIX = "quarry-browser-profile-"
#: a profile without the server's pid in its name (written before it carried one) is only swept when older
STALE_UNNAMED_PROFILE_AGE = 3600.0
_PROFILE_RE = re.compile(re.escape(PROFILE_PREFIX) + r"(?:(\d+)-)?[^/]+")
_DEVTOOLS_RE = re.compile(rb"DevTools listening on (ws://\S+)")

EXIT_OK = 0
EXIT_FAILED = 1


def _log(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"quarry-browser-server[{os.getpid()}]: {message}\n")
        sys.stderr.flush()


def idle_timeout(env: Mapping[str, str]) -> float:
    """``QUARRY_BROWSER_IDLE_TIMEOUT`` in seconds when a positive number, else 60."""
    try:
        value = float(env.get("QUARRY_BROWSER_IDLE_TIMEOUT", ""))
    except ValueError:
        return DEFAULT_IDLE_TIMEOUT
    return value if value > 0 and value == value and value != float("inf") else DEFAULT_IDLE_TIMEOUT


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (any owner; a zombie counts as alive: its parent still owns it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _chromium_holder(profile: str) -> int | None:
    """The pid in Chromium's ``SingletonLock`` (a symlink to ``<host>-<pid>``) when it names this host, else
    ``None``."""
    try:
        target = os.readlink(os.path.join(profile, "SingletonLock"))
    except OSError:
        return None
    host, _, pid = target.rpartition("-")
    if host != os.uname().nodename or not pid.isdigit():
        return None
    return int(pid)


def sweep_stale_profiles(directory: str | None = None, *, now: float | None = None) -> list[str]:
    """Delete the Chromium profiles that killed browser servers left in ``directory`` (default: the temporary
    directory) and return their paths.

    A profile is stale when it is this user's, the server pid in its name is gone and no live Chromium of this
    host holds it (``SingletonLock``). A profile without a pid in its name (from before it carried one) is stale
    when no live Chromium holds it and it has not changed for :data:`STALE_UNNAMED_PROFILE_AGE` seconds. A live
    pid keeps its profile even if the pid was reused by another process: sweeping errs on the side of keeping.
    Failures to look or delete are skipped; a profile in use is never touched.
    """
    base = directory if directory is not None else tempfile.gettempdir()
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        m = _PROFILE_RE.fullmatch(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or st.st_uid != uid:
            continue
        server_pid = m.group(1)
        if server_pid is not None:
            if _alive(int(server_pid)):
                continue
        elif now - st.st_mtime < STALE_UNNAMED_PROFILE_AGE:
            continue
        holder = _chromium_holder(entry.path)
        if holder is not None and _alive(holder):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.exists(entry.path):
            removed.append(entry.path)
    return removed


def _managed_executable() -> str | None:
    """Playwright's own Chromium, when installed."""
    path = managed_executable_path()
    return path if path and os.path.isfile(path) else None


def chromium_command(executable: str, profile: str, env: Mapping[str, str]) -> list[str]:
    """Chromium's command line: the executor's launch flags plus the remote-debugging port and profile."""
    options = launch_options(executable, env)
    cmd = [executable, *options["args"]]
    if not options["chromium_sandbox"] and "--no-sandbox" not in cmd:
        cmd.append("--no-sandbox")
    if options["headless"]:
        cmd += ["--headless", "--hide-scrollbars", "--mute-audio"]
    cmd += [
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}",
        "--no-default-browser-check",
        "--disable-background-timer-throttling",
        "--disable-backgrounding-occluded-windows",
        "--disable-renderer-backgrounding",
        "about:blank",
    ]
    return cmd


def write_discovery_file(path: str, record: Mapping[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (temp file in the same directory, 0600, rename)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".browser.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(record), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_discovery_file(path: str | None) -> None:
    """Remove the discovery file only while it still names this process (a successor may own it by now)."""
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and record.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            os.unlink(path)


def busy_pages(targets: Any) -> int:
    """How many of ``/json/list``'s targets are pages in use (``type == "page"``, not at ``about:blank``)."""
    if not isinstance(targets, list):
        raise ValueError("/json/list did not return a list")
    return sum(1 for t in targets if isinstance(t, dict) and t.get("type") == "page" and t.get("url") != "about:blank")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=POLL_TIMEOUT) as resp:
        return json.loads(resp.read().decode("utf-8"))


class _Server:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.discovery = env.get("QUARRY_BROWSER_DISCOVERY_FILE") or None
        self.idle_timeout = idle_timeout(env)
        self.profile = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")
        self.chromium: asyncio.subprocess.Process | None = None
        self.stop = asyncio.Event()
        self.exit_code = EXIT_OK
        self._lease: int | None = None  # the discovery file's mtime (ns) last seen: a newer one is a reuse

    def renewed(self) -> bool:
        """Whether a run reused the server (touched the discovery file) since the last look."""
        if not self.discovery:
            return False
        try:
            mtime = os.stat(self.discovery).st_mtime_ns
        except OSError:
            return False
        renewed = self._lease is not None and mtime != self._lease
        self._lease = mtime
        return renewed

    def retire(self) -> bool:
        """Under the discovery lock: unless a run renewed the lease meanwhile, remove the discovery file so no run
        can find this server any more (``True``); ``False`` when renewed or the lock stayed busy."""
        if not self.discovery:
            return True
        lock_path = os.path.join(os.path.dirname(self.discovery) or ".", "browser.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            _log(f"cannot open {lock_path}: {exc}; shutting down without it")
            return True
        try:
            deadline = time.monotonic() + RETIRE_LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False  # a run is looking at the server right now: next poll
                    time.sleep(0.05)
            if self.renewed():
                return False
            _remove_discovery_file(self.discovery)
            return True
        finally:
            os.close(fd)  # releases the lock

    async def start(self, executable: str) -> str:
        """Start Chromium; return the ``ws://`` URL it announced (within 30 s)."""
        self.chromium = await asyncio.create_subprocess_exec(
            *chromium_command(executable, self.profile, self.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.chromium.stderr is not None
        stderr = self.chromium.stderr

        async def announced() -> str:
            while True:
                line = await stderr.readline()
                if not line:
                    raise RuntimeError(f"Chromium exited before announcing its DevTools URL: {executable}")
                m = _DEVTOOLS_RE.search(line)
                if m:
                    return m.group(1).decode("ascii")

        return await asyncio.wait_for(announced(), STARTUP_TIMEOUT)

    async def drain_stderr(self) -> None:
        """Chromium keeps logging to stderr; an unread pipe would block it."""
        assert self.chromium is not None and self.chromium.stderr is not None
        with contextlib.suppress(Exception):
            while await self.chromium.stderr.read(65536):
                pass

    async def watch(self, http_base: str) -> None:
        """The idle loop: poll ``/json/list`` until idle long enough, polls keep failing, or a stop."""
        assert self.chromium is not None
        idle_since: float | None = None
        failures = 0
        exited = asyncio.ensure_future(self.chromium.wait())
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            while True:
                try:
                    pages = busy_pages(await asyncio.to_thread(_get_json, f"{http_base}/json/list"))
                    failures = 0
                except Exception as exc:
                    failures += 1
                    _log(f"poll {failures} of /json/list failed: {exc}")
                    if failures >= MAX_FAILED_POLLS:
                        _log("Chromium does not answer; shutting down")
                        self.exit_code = EXIT_FAILED
                        return
                else:
                    now = time.monotonic()
                    if self.renewed():
                        idle_since = None if pages else now
                    elif pages:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = now
                    elif now - idle_since >= self.idle_timeout:
                        if await asyncio.to_thread(self.retire):
                            _log(f"Browser server idle for {now - idle_since:.0f}s, shutting down")
                            return
                        idle_since = time.monotonic()  # reused meanwhile: a new idle period
                done, _ = await asyncio.wait({exited, stopped}, timeout=POLL_INTERVAL)
                if stopped in done:
                    _log("signal received, shutting down")
                    return
                if exited in done:
                    _log(f"Chromium exited ({self.chromium.returncode}); shutting down")
                    self.exit_code = EXIT_FAILED
                    return
        finally:
            exited.cancel()
            stopped.cancel()

    async def shutdown(self) -> None:
        _remove_discovery_file(self.discovery)
        proc = self.chromium
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


async def run_browser_server(ipc_fd: int, env: Mapping[str, str] | None = None) -> int:
    """Run the server until idle; the ``ws://`` URL goes to ``ipc_fd`` (the process's real stdout) as one line."""
    env = os.environ if env is None else env
    stale = sweep_stale_profiles()
    if stale:
        _log(f"deleted {len(stale)} browser profile(s) left by killed servers: {', '.join(stale)}")
    server = _Server(env)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop.set)
    drain: asyncio.Task[None] | None = None
    try:
        try:
            explicit = bool(env.get("QUARRY_BROWSER_EXECUTABLE"))
            executable = find_browser_executable(env, None if explicit else _managed_executable())
            ws_endpoint = await server.start(executable)
        except Exception as exc:
            _log(f"cannot start Chromium: {exc}")
            return EXIT_FAILED
        drain = loop.create_task(server.drain_stderr())
        if server.discovery:
            record = {
                "ws_endpoint": ws_endpoint,
                "pid": os.getpid(),
                "executable": executable,
                "launch": browser_launch_settings(env),
                "started_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
            try:
                write_discovery_file(server.discovery, record)
            except OSError as exc:
                _log(f"cannot write the discovery file {server.discovery}: {exc}")
                return EXIT_FAILED
            server.renewed()  # the lease starts at the file as written
        os.write(ipc_fd, (ws_endpoint + "\n").encode("ascii"))
        os.close(ipc_fd)  # the runtime stops reading after the first line
        _log(f"serving {ws_endpoint} (idle timeout {server.idle_timeout:g}s)")
        http_base = "http://" + ws_endpoint.split("://", 1)[1].split("/", 1)[0]
        await server.watch(http_base)
        return server.exit_code
    finally:
        await server.shutdown()
        if drain is not None:
            drain.cancel()
