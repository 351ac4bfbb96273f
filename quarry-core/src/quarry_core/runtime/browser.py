"""Browser provisioning (CONTRACT_RUN §3.1, runtime.md §11): which browser a run's executor uses.

Order:

1. an explicit CDP endpoint (``--browser-ws-endpoint``, ``QUARRY_BROWSER_WS_ENDPOINT``, ``QUARRY_BROWSER_ENDPOINT``,
   config ``browser_ws_endpoint``) behind a health gate, ``GET <http(s) form>/json/version`` (2 s); a failure ends
   the run before the executor starts (``browser endpoint unreachable: <url>: <error>``);
2. the reuse server (default; off with ``--no-browser-reuse``), found through the discovery file; any failure
   warns ``Warning: Browser reuse unavailable: <error>`` and falls through;
3. the executor's own browser (per run cold, per process warm).

Reuse server discovery, all under an exclusive ``flock`` on ``<dir>/browser.lock`` (waiting up to 30 s), where
``<dir>`` is ``$XDG_RUNTIME_DIR/quarry`` else ``<tempdir>/quarry-<uid>`` (0700):

- no ``browser.json`` → launch;
- its pid is gone → delete the file, launch;
- its pid is a zombie, or ``/json/version`` fails (2 s) → kill the pid's process group only if its command line
  has ``--browser-server``, delete the file, launch;
- healthy → touch ``browser.json`` (the lease: the server's idle time starts again, and an idle server retires
  only under the same lock, after one more look at the lease) → reuse (``Reusing browser server (pid=…, age=…)``).

Launching runs ``<executor command> --browser-server`` in a new session with ``QUARRY_BROWSER_DISCOVERY_FILE``
and ``QUARRY_BROWSER_IDLE_TIMEOUT``; its first stdout line must start with ``ws://`` within 30 s, else it is killed.
The server writes ``browser.json`` itself and stops itself when idle (``quarry_executor.browser_server``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
from loguru import logger

from quarry_core.errors import QuarryError
from quarry_core.interfaces import BROWSER_LAUNCH_ENV, browser_launch_settings

__all__ = [
    "HEALTH_TIMEOUT",
    "LAUNCH_TIMEOUT",
    "LOCK_TIMEOUT",
    "REUSE_EXECUTORS",
    "BrowserEndpointError",
    "BrowserReuseError",
    "ReuseServer",
    "acquire_reuse_server",
    "acquire_reuse_server_sync",
    "check_endpoint",
    "check_endpoint_sync",
    "describe_reuse",
    "http_form",
    "provision_browser",
    "read_discovery",
    "reuse_directory",
]

HEALTH_TIMEOUT = 2.0
LOCK_TIMEOUT = 30.0
LAUNCH_TIMEOUT = 30.0


class BrowserEndpointError(QuarryError):
    """An explicit CDP endpoint failed its health check."""


class BrowserReuseError(QuarryError):
    """The reuse server could not be found or started (the run falls back to its own browser)."""


@attrs.frozen
class ReuseServer:
    """A healthy reuse server: its CDP endpoint, pid, start time and whether this call launched it."""

    ws_endpoint: str
    pid: int
    started_at: str
    launched: bool


def http_form(endpoint: str) -> str:
    """``ws://h:p/devtools/browser/…`` → ``http://h:p`` (``wss`` → ``https``); http(s) URLs lose their path."""
    scheme, _, rest = endpoint.partition("://")
    scheme = scheme.lower()
    web = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return f"{web}://{rest.split('/', 1)[0]}"


def _get_version(endpoint: str, timeout: float) -> dict[str, Any]:
    url = f"{http_form(endpoint)}/json/version"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data = json.loads(resp.read().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("/json/version did not return an object")
    return data


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def check_endpoint_sync(endpoint: str, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any]:
    """``GET <http form>/json/version``; raises :class:`BrowserEndpointError` naming the endpoint and the error."""
    try:
        return _get_version(endpoint, timeout)
    except Exception as exc:
        raise BrowserEndpointError(f"browser endpoint unreachable: {endpoint}: {_describe(exc)}") from exc


async def check_endpoint(endpoint: str, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any]:
    """The health gate of an explicit endpoint (in a worker thread): its ``/json/version`` object."""
    return await anyio.to_thread.run_sync(check_endpoint_sync, endpoint, timeout)


def reuse_directory(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_RUNTIME_DIR/quarry``, else ``<tempfile.gettempdir()>/quarry-<uid>``."""
    env = os.environ if env is None else env
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isdir(runtime_dir):
        return Path(runtime_dir) / "quarry"
    return Path(tempfile.gettempdir()) / f"quarry-{os.getuid()}"


def read_discovery(path: Path) -> dict[str, Any] | None:
    """The discovery file's record, or ``None`` when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or not data.get("ws_endpoint"):
        return None
    return data


def describe_reuse(env: Mapping[str, str] | None = None, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any]:
    """The reuse server as the next run would find it, read-only (no lock, no launch, nothing killed):
    ``{directory, pid, ws_endpoint, healthy, launch, launch_matches}``; ``pid``/``ws_endpoint`` are ``None``
    without a discovery file, ``healthy`` says whether the pid is alive (not a zombie) and ``/json/version``
    answers; ``launch`` is the settings the server started with (``None`` without a file or from an older server)
    and ``launch_matches`` whether they are this environment's (``None`` when unknown)."""
    directory = reuse_directory(env)
    record = read_discovery(directory / "browser.json")
    info: dict[str, Any] = {
        "directory": str(directory),
        "pid": None,
        "ws_endpoint": None,
        "healthy": False,
        "launch": None,
        "launch_matches": None,
    }
    if record is None:
        return info
    info["pid"], info["ws_endpoint"] = int(record["pid"]), str(record["ws_endpoint"])
    info["healthy"] = _probe(record, timeout)[1]
    differences = _launch_differences(record, os.environ if env is None else env)
    if differences is not None:
        info["launch"] = dict(record["launch"])
        info["launch_matches"] = not differences
    return info


def _launch_differences(record: Mapping[str, Any], env: Mapping[str, str]) -> list[str] | None:
    """How the launch settings a discovery ``record`` names differ from ``env``'s, one ``"<K> unset (this run:
    <K>=v)"`` each; ``None`` when the record has none (an older server, taken as matching)."""
    launch = record.get("launch")
    if not isinstance(launch, Mapping):
        return None

    def show(key: str, value: object) -> str:
        return f"{key} unset" if value is None else f"{key}={value}"

    wanted = browser_launch_settings(env)
    had = {k: launch.get(k) or None for k in BROWSER_LAUNCH_ENV}
    return [f"{show(k, had[k])} (this run: {show(k, wanted[k])})" for k in BROWSER_LAUNCH_ENV if had[k] != wanted[k]]


def _probe(record: Mapping[str, Any], timeout: float = HEALTH_TIMEOUT) -> tuple[str | None, bool]:
    """A discovery record's server: its process state (``None`` gone, ``Z`` zombie) and whether it is healthy
    (alive, not a zombie, ``/json/version`` answering within ``timeout``)."""
    pid = int(record["pid"])
    state = _proc_state(pid)
    if state is None or state == "Z":
        return state, False
    try:
        _get_version(str(record["ws_endpoint"]), timeout)
    except Exception as exc:
        logger.debug("browser server pid={} failed its health check: {}", pid, _describe(exc))
        return state, False
    return state, True


def _proc_state(pid: int) -> str | None:
    """The process state letter (``Z`` = zombie) or ``None`` when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (from ``/proc``; empty where there is none)."""
    members = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _kill_server(pid: int, zombie: bool) -> None:
    """Kill the process group of a stale server, but only a process that is one (``--browser-server``).

    A zombie's command line is gone: its group is killed when a live member of it still names ``--browser-server``
    or the server's Chromium profile (the server died hard and left Chromium running)."""
    if zombie:
        with contextlib.suppress(OSError):
            os.waitpid(pid, os.WNOHANG)  # our own child (a long-lived runtime): reap it
        ours = any(
            "--browser-server" in args
            or any(a.startswith("--user-data-dir=") and "quarry-browser-profile-" in a for a in args)
            for args in map(_cmdline, _group_members(pid))
        )
    else:
        ours = "--browser-server" in _cmdline(pid)
    if not ours:
        return
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, os.WNOHANG)


def _lock(fd: int, lock_path: Path, timeout: float) -> None:
    import fcntl

    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise BrowserReuseError(f"cannot lock {lock_path}: {exc.strerror or exc}") from exc
        if time.monotonic() >= deadline:
            raise BrowserReuseError(f"timed out after {timeout:g} s waiting for {lock_path}")
        time.sleep(0.02)


def _launch(command: Sequence[str], env: Mapping[str, str], discovery: Path, idle_timeout: float | None) -> int:
    """Start the server detached; wait for its ``ws://`` line (30 s). Returns its pid."""
    full_env = dict(env)
    full_env["QUARRY_BROWSER_DISCOVERY_FILE"] = str(discovery)
    if idle_timeout is not None:
        full_env["QUARRY_BROWSER_IDLE_TIMEOUT"] = f"{idle_timeout:g}"
    log = discovery.with_name("browser-server.log")
    try:
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [*command, "--browser-server"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=full_env,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as exc:
        raise BrowserReuseError(f"cannot start the browser server: {exc}") from exc
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    fd = proc.stdout.fileno()
    try:
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise BrowserReuseError(f"the browser server printed no ws:// URL within {LAUNCH_TIMEOUT:g} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            line += chunk
        if not line.startswith(b"ws://"):
            code = proc.poll()
            why = f"exited with {code}" if code is not None else f"printed {line[:80]!r}"
            raise BrowserReuseError(f"the browser server {why} instead of a ws:// URL (see {log})")
    except BaseException:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(5)
        raise
    finally:
        proc.stdout.close()
    return proc.pid


def _check_launch(record: Mapping[str, Any], env: Mapping[str, str], discovery: Path) -> None:
    """Refuse a healthy server started with other browser launch settings (executable, headless, sandbox) than
    ``env`` asks for: that run gets its own browser (the caller warns) and the server stays for the runs that match.
    A discovery file without ``launch`` (an older server) matches."""
    differences = _launch_differences(record, env)
    if differences:
        raise BrowserReuseError(
            f"the browser server (pid={record.get('pid')}, {discovery}) was started with {', '.join(differences)}; "
            "this run launches its own browser"
        )


def acquire_reuse_server_sync(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    directory: Path | None = None,
    idle_timeout: float | None = None,
) -> ReuseServer:
    """Find a healthy reuse server or launch one, under the discovery lock. Raises :class:`BrowserReuseError`."""
    env = dict(os.environ if env is None else env)
    directory = directory or reuse_directory(env)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise BrowserReuseError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    lock_path = directory / "browser.lock"
    discovery = directory / "browser.json"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BrowserReuseError(f"cannot open {lock_path}: {exc.strerror or exc}") from exc
    try:
        _lock(fd, lock_path, LOCK_TIMEOUT)
        record = read_discovery(discovery)
        if record is not None:
            pid = int(record["pid"])
            state, healthy = _probe(record)
            if healthy:
                _check_launch(record, env, discovery)
                with contextlib.suppress(OSError):  # the lease: the server sees a reuse and stays up
                    os.utime(discovery)
                return ReuseServer(str(record["ws_endpoint"]), pid, str(record.get("started_at", "")), False)
            if state is not None:
                _kill_server(pid, zombie=state == "Z")
            with contextlib.suppress(OSError):
                discovery.unlink()
        pid = _launch(command, env, discovery, idle_timeout)
        record = read_discovery(discovery)
        if record is None or record.get("pid") != pid:
            raise BrowserReuseError(f"the browser server (pid={pid}) wrote no discovery file {discovery}")
        return ReuseServer(str(record["ws_endpoint"]), pid, str(record.get("started_at", "")), True)
    finally:
        os.close(fd)  # releases the flock


async def acquire_reuse_server(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    directory: Path | None = None,
    idle_timeout: float | None = None,
) -> ReuseServer:
    """:func:`acquire_reuse_server_sync` in a worker thread."""

    def call() -> ReuseServer:
        return acquire_reuse_server_sync(command, env, directory=directory, idle_timeout=idle_timeout)

    return await anyio.to_thread.run_sync(call)


#: executors that understand ``--browser-server`` (the reuse server lives in quarry-executor)
REUSE_EXECUTORS = frozenset({"playwright"})


async def provision_browser(settings: Any, host: Any) -> Any:
    """Step 5 of a run: ``settings`` (a :class:`~quarry_core.runtime.run.RunSettings`) with the browser decided.

    An explicit endpoint must pass its health gate (else :class:`BrowserEndpointError`); without one and with
    ``browser_reuse``, the reuse server's endpoint is filled in (a failure warns and leaves the executor to
    launch its own browser). The result is marked ``browser_provisioned``, so fan-out children inherit it.
    """
    done = attrs.evolve(settings, browser_provisioned=True)
    if settings.browser_ws_endpoint:
        await check_endpoint(settings.browser_ws_endpoint)
        return done
    if not settings.browser_reuse or settings.executor not in REUSE_EXECUTORS:
        return done
    from quarry_core.interfaces import ExecutorConfig

    try:
        rec = host.executor(settings.executor)
        launcher = rec.record.factory(
            ExecutorConfig(python=settings.executor_python, resolve_from=settings.resolve_from)
        )
        env = dict(os.environ)
        env.update(launcher.env())
        server = await acquire_reuse_server(launcher.command(False), env)
    except Exception as exc:
        logger.warning("Warning: Browser reuse unavailable: {}", exc)
        return done
    if not server.launched:
        logger.info("Reusing browser server (pid={}, age={})", server.pid, _age(server.started_at))
    else:
        logger.debug("started browser server pid={} at {}", server.pid, server.ws_endpoint)
    return attrs.evolve(done, browser_ws_endpoint=server.ws_endpoint)


def _age(started_at: str) -> str:
    from datetime import UTC, datetime

    try:
        started = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((datetime.now(UTC) - started).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
