"""Warm mode (``python -m quarry_executor --warm``, D12): many runs, one at a time, in one process.

Line 1 of stdin is the first run request (unusable → exit 3, as in run mode); every later run arrives as a
``run_request`` control frame after the previous ``run_result``. ``shutdown`` or stdin EOF while idle ends the
process with exit 0; a failed frame pipe or an internal error exits 2. A bad ``run_request`` frame gives that
run a ``run_result`` with status ``crash`` and the process stays up.

What a run shares with the runs before it:

- **the browser**: launched once per process (eagerly, while the first request is still on its way) or attached
  once per CDP endpoint (eagerly too when the pool names it in ``QUARRY_BROWSER_ENDPOINT``); every run still gets
  a fresh context and page, closed at its end;
- **the script module**: loaded once per process and path, reloaded when the file's size or mtime changes
  (:class:`ScriptCache`). Module globals therefore persist between runs of the same script;
- ``write_id`` numbering (``seq`` restarts at 1 per run).

SIGTERM cancels the current run (reason ``signal``, 2 s grace) and then ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from quarry_core.protocol import RunRequest, RunRequestError, RunRequestFrame, RunResult, Shutdown, encode_frame
from quarry_executor.browser import BrowserSession
from quarry_executor.channel import BadRunRequest, Channel, FrameWriter, RequestLineError, StdinReader
from quarry_executor.diag import info, warn
from quarry_executor.host import SIGTERM_GRACE, ScriptHost
from quarry_executor.loader import LoadedScript, load_script

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page

__all__ = ["BrowserCache", "PooledSession", "ScriptCache", "run_warm"]

EXIT_OK = 0
EXIT_CRASH = 2
EXIT_BAD_REQUEST = 3

#: runs served by one pooled page (``--isolation page``) before it and its context are replaced
PAGE_RENEW_AFTER = 50


class ScriptCache:
    """Loaded scripts by path; a changed file (size or mtime) is loaded again."""

    def __init__(self) -> None:
        self._scripts: dict[str, tuple[tuple[int, int], LoadedScript]] = {}
        self.loads = 0

    def load(self, path: str) -> LoadedScript:
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            self._scripts.pop(path, None)
            return load_script(path)  # raises the contract's "file not found"
        cached = self._scripts.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        script = load_script(path)
        self.loads += 1
        self._scripts[path] = (stamp, script)
        return script


class PooledSession(BrowserSession):
    """The process's browser, shared by its runs: each run still gets a fresh context and page, but a spare
    pair (no proxy) is made ready while the process waits, and a finished run's pair is closed in the
    background, so neither sits between a ``run_request`` and the script."""

    def __init__(self, playwright: Any, browser: Any, *, owned: bool) -> None:
        super().__init__(playwright, browser, owned=owned)
        self._spare: asyncio.Task[tuple[BrowserContext, Page]] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.isolation = os.environ.get("QUARRY_ISOLATION", "context")
        self._shared: tuple[BrowserContext, Page] | None = None
        self._shared_runs = 0

    def prepare_spare(self) -> None:
        if self.isolation == "page":
            return
        if self._spare is None and self.browser.is_connected():
            self._spare = asyncio.get_running_loop().create_task(BrowserSession.new_page(self, None))

    async def new_page(self, proxy: Mapping[str, Any] | None) -> tuple[BrowserContext, Page]:
        if self.isolation == "page" and proxy is None:
            shared = self._shared
            if shared is not None and self._shared_runs >= PAGE_RENEW_AFTER:
                # a renderer that has served many runs keeps growing (about 1.3 MB a run measured): a fresh
                # context and page cost far less than recycling the process
                self._track(BrowserSession.discard(self, *shared))
                shared = None
            if shared is None or shared[1].is_closed():
                shared = self._shared = await BrowserSession.new_page(self, None)
                self._shared_runs = 0
            self._shared_runs += 1
            return shared
        spare, self._spare = self._spare, None
        if spare is not None:
            if proxy is None:
                try:
                    return await spare
                except Exception:  # fall back to a fresh pair below
                    pass
            else:
                self._closing_pair(spare)
        return await super().new_page(proxy)

    def _closing_pair(self, pair: asyncio.Task[tuple[BrowserContext, Page]]) -> None:
        async def close_it() -> None:
            with contextlib.suppress(BaseException):
                context, page = await pair
                await BrowserSession.discard(self, context, page)

        self._track(close_it())

    def _track(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def discard(self, context: BrowserContext, page: Page) -> None:
        if self._shared is not None and page is self._shared[1]:
            if _may_have_routes(page):
                with contextlib.suppress(Exception):
                    await page.unroute_all(behavior="ignoreErrors")  # the next run starts without this run's routes
            return
        self._track(BrowserSession.discard(self, context, page))
        self.prepare_spare()

    async def close(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            self._closing_pair(spare)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=5.0)
        await super().close()


def _may_have_routes(page: Page) -> bool:
    """Whether ``page`` may hold routes (``route``, ``route_from_har``, ``route_web_socket``): Playwright keeps
    them on the page object, so a run that set none is not followed by an ``unroute_all`` round trip through the
    driver. Unknown Playwright internals answer ``True``."""
    impl = getattr(page, "_impl_obj", None)
    routes = getattr(impl, "_routes", None)
    socket_routes = getattr(impl, "_web_socket_routes", None)
    if not isinstance(routes, list) or not isinstance(socket_routes, list):
        return True
    return bool(routes or socket_routes)


class BrowserCache:
    """One browser per endpoint (``None`` = launched by this process), opened on first use, kept open."""

    def __init__(self) -> None:
        self._sessions: dict[str | None, asyncio.Task[BrowserSession]] = {}

    def start(self, endpoint: str | None) -> asyncio.Task[BrowserSession]:
        task = self._sessions.get(endpoint)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.get_running_loop().create_task(self._open(endpoint))
            self._sessions[endpoint] = task
        return task

    @staticmethod
    async def _open(endpoint: str | None) -> BrowserSession:
        session = await PooledSession.open(endpoint)
        assert isinstance(session, PooledSession)
        session.prepare_spare()
        return session

    async def get(self, request: RunRequest) -> BrowserSession:
        endpoint = request.browser_ws_endpoint
        session = await asyncio.shield(self.start(endpoint))
        if not session.browser.is_connected():  # the browser died: start over once
            warn("the shared browser is gone; starting a new one")
            self._sessions.pop(endpoint, None)
            with contextlib.suppress(Exception):
                await session.close()
            session = await asyncio.shield(self.start(endpoint))
        return session

    async def close(self) -> None:
        for task in self._sessions.values():
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                session = await task
                await asyncio.wait_for(session.close(), 10.0)
        self._sessions.clear()


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


async def _first_request(stdin: StdinReader) -> RunRequest | None:
    try:
        line = await stdin.read_request_line()
    except RequestLineError as exc:
        warn(str(exc))
        return None
    try:
        raw: Any = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        return RunRequest.from_wire(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        warn(f"invalid run request: invalid JSON: {exc}")
    except RunRequestError as exc:
        warn(f"invalid run request: {exc}")
    return None


class _Warm:
    def __init__(self, channel: Channel, browsers: BrowserCache) -> None:
        self.channel = channel
        self.scripts = ScriptCache()
        self.browsers = browsers
        self.host: ScriptHost | None = None
        self.inbox: asyncio.Queue[RunRequestFrame | Shutdown | BadRunRequest | None] = asyncio.Queue()
        self.terminating = False
        self.runs = 0

    def on_cancel(self, frame: Any) -> None:
        if self.host is not None:
            self.host.on_cancel_frame(frame)

    def on_sigterm(self) -> None:
        self.terminating = True
        if self.host is not None:
            self.host.request_cancel("signal", SIGTERM_GRACE)
        else:
            self.inbox.put_nowait(None)

    async def run_one(self, request: RunRequest) -> None:
        host = ScriptHost(
            request, self.channel, open_browser=self.browsers.get, owns_session=False, load=self.scripts.load
        )
        self.host = host
        try:
            await host.execute()
        finally:
            self.host = None
        self.runs += 1

    async def reject(self, bad: BadRunRequest) -> None:
        warn(f"bad run_request: {bad.message}")
        if not bad.run_id:
            return
        result = RunResult(run_id=bad.run_id, status="crash", message=bad.message)
        with contextlib.suppress(Exception):
            await self.channel.writer.write(encode_frame(result))

    async def loop(self, first: RunRequest) -> int:
        request: RunRequest | None = first
        while request is not None:
            await self.run_one(request)
            if not self.channel.healthy:
                warn(f"frame channel failed: {self.channel.failure}; warm executor exits")
                return EXIT_CRASH
            request = None
            while request is None and not self.terminating:
                item = await self.inbox.get()
                if item is None or isinstance(item, Shutdown):
                    break
                if isinstance(item, BadRunRequest):
                    await self.reject(item)
                    continue
                request = item.request
            if self.terminating:
                break
        info(f"warm executor done after {self.runs} runs ({self.scripts.loads} script loads)")
        return EXIT_OK


async def run_warm(ipc_fd: int) -> int:
    """The warm loop; returns the process exit code."""
    stdin = StdinReader(0)
    await stdin.open()
    browsers = BrowserCache()
    # launch (or attach to the runtime's endpoint) while the pool keeps this process waiting for its first run
    eager = browsers.start(os.environ.get("QUARRY_BROWSER_WS_ENDPOINT") or os.environ.get("QUARRY_BROWSER_ENDPOINT"))
    eager.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failure is reported by the run using it
    first = await _first_request(stdin)
    if first is None:
        await browsers.close()
        return EXIT_BAD_REQUEST
    writer = FrameWriter(ipc_fd)
    await writer.open()
    channel = Channel(writer, stdin)
    warm = _Warm(channel, browsers)
    channel.on_warm = warm.inbox.put_nowait
    channel.start_reader(warm.on_cancel)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, warm.on_sigterm)
    try:
        code = await warm.loop(first)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await browsers.close()
    await channel.stop_reader()
    # Drain without a deadline, as in run mode: the runtime decides when to stop us (test_slow_reader.py)
    await writer.close(timeout=None)
    return code
