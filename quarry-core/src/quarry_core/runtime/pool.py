"""Warm executors (CONTRACT_RUN fan-out, D12): a pool of long-lived ``--warm`` executor processes.

Each process runs one run at a time; the first run of a process goes as stdin line 1, every later one as a
``run_request`` control frame. A process is retired (``shutdown``, stdin closed, then stopped if it lingers)
after ``recycle_after`` runs, and replaced after any run that did not end cleanly (crash, timeout,
cancellation, a stream error) or when it exited. The pool never blocks for long: the fan-out coordinator bounds
how many runs ask for an executor at once, and at most ``size`` idle processes are kept. With ``launch_grace``
an ``acquire`` that finds no idle or starting process while others are leased first waits up to that long for
one to come back: a run ending is usually much nearer than a new process (interpreter, Node driver and browser:
about 1.5 CPU-seconds), e.g. the root's executor when the root hands out its last enqueue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Protocol

from loguru import logger

from quarry_core.interfaces import ExecutorConfig
from quarry_core.plugins import PluginHost
from quarry_core.protocol.frames import Shutdown
from quarry_core.runtime.process import ExecutorProcess, default_stderr_printer

__all__ = [
    "DEFAULT_EXECUTOR_RECYCLE_AFTER",
    "ExecutorPool",
    "ExecutorSource",
    "LimitedPool",
    "PoolTurn",
    "WarmExecutor",
]

#: runs a warm executor serves before it is replaced: its Python, Node driver and browser grow by about 0.1 MB
#: a run (measured over 200 runs), while replacing the process costs about 1.2 CPU-seconds (20 ms a run at 50);
#: what grows fast, a pooled page's renderer, is renewed on its own (quarry_executor.warm.PAGE_RENEW_AFTER)
DEFAULT_EXECUTOR_RECYCLE_AFTER = 200

_RETIRE_WAIT = 10.0
_STOP_GRACE = 2.0


class WarmExecutor:
    """One warm executor process and how many runs it has served."""

    def __init__(self, proc: ExecutorProcess, version: str) -> None:
        self.proc = proc
        self.version = version
        self.runs = 0

    @property
    def fresh(self) -> bool:
        """No run yet: the next run request goes as stdin line 1."""
        return self.runs == 0

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class ExecutorSource(Protocol):
    """Where a run gets its warm executor from (:class:`ExecutorPool`, :class:`LimitedPool`, :class:`PoolTurn`)."""

    async def acquire(self) -> WarmExecutor: ...

    def release(self, warm: WarmExecutor, *, reusable: bool) -> None: ...


class LimitedPool:
    """A view of a pool that lends at most ``limit`` executors at once (fan-out children: ``--parallel``);
    ``acquire`` waits for a free slot, so runs can do their setup before their turn comes. Runs that must get
    their executors in a fixed order take a :meth:`turn` each, in that order."""

    def __init__(self, pool: ExecutorPool, limit: int) -> None:
        self.pool = pool
        self._slots = asyncio.Semaphore(limit)
        self._last_turn: asyncio.Future[None] | None = None

    def turn(self) -> PoolTurn:
        """A view whose ``acquire`` waits until every earlier turn has acquired (or ended): executors go out in
        the order the turns were taken, whichever run finishes its setup first."""
        previous = self._last_turn
        self._last_turn = asyncio.get_running_loop().create_future()
        return PoolTurn(self, previous, self._last_turn)

    async def acquire(self) -> WarmExecutor:
        await self._slots.acquire()
        try:
            return await self.pool.acquire()
        except BaseException:
            self._slots.release()
            raise

    def release(self, warm: WarmExecutor, *, reusable: bool) -> None:
        try:
            self.pool.release(warm, reusable=reusable)
        finally:
            self._slots.release()


class PoolTurn:
    """One run's place in a :class:`LimitedPool`'s queue (see :meth:`LimitedPool.turn`); call :meth:`end` when
    the run is over, acquired or not, so that later turns never wait for it."""

    def __init__(self, pool: LimitedPool, previous: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._pool = pool
        self._previous = previous
        self._mine = mine

    async def acquire(self) -> WarmExecutor:
        try:
            if self._previous is not None:
                await self._previous
            return await self._pool.acquire()
        finally:
            self.end()

    def release(self, warm: WarmExecutor, *, reusable: bool) -> None:
        self._pool.release(warm, reusable=reusable)

    def end(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)


class ExecutorPool:
    """Long-lived executor processes for the runs of one invocation (root and fan-out children)."""

    def __init__(
        self,
        host: PluginHost,
        executor: str,
        config: ExecutorConfig,
        *,
        size: int,
        recycle_after: int = DEFAULT_EXECUTOR_RECYCLE_AFTER,
        on_stderr: Callable[[str], None] = default_stderr_printer,
        env: Mapping[str, str] | None = None,
        launch_grace: float = 0.0,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be >= 1")
        if recycle_after < 1:
            raise ValueError("recycle_after must be >= 1")
        self._host = host
        self._executor = executor
        self._config = config
        self.size = size
        self.recycle_after = recycle_after
        self._on_stderr = on_stderr
        self._env = dict(env or {})
        self.launch_grace = launch_grace
        self._idle: list[WarmExecutor] = []
        self._leased = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._starting: set[asyncio.Task[WarmExecutor | None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False
        self.launched = 0
        self.retired = 0
        self.replaced = 0

    async def _launch(self) -> WarmExecutor:
        """Start one ``--warm`` process. Raises the launcher's or the spawn's error."""
        rec = self._host.executor(self._executor)
        launcher = rec.record.factory(self._config)
        version = str(getattr(launcher, "version", rec.version))
        env = dict(os.environ)
        env.update(launcher.env())
        env.update(self._env)
        proc = await ExecutorProcess.start(launcher.command(True), env, on_stderr=self._on_stderr)
        self.launched += 1
        return WarmExecutor(proc, version)

    def prewarm(self, count: int) -> None:
        """Start up to ``count`` processes in the background so the first runs find them ready."""
        room = self.size - len(self._idle) - len(self._starting)
        for _ in range(max(0, min(count, room))):
            task = asyncio.create_task(self._prewarm_one())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _prewarm_one(self) -> WarmExecutor | None:
        try:
            warm = await self._launch()
        except Exception as exc:  # the run that needs it will launch again and report the error
            logger.debug("prewarming an executor failed: {}", exc)
            return None
        if self._closed:
            self._retire(warm)
            return None
        self._idle.append(warm)
        return warm

    async def acquire(self) -> WarmExecutor:
        """An idle live process, else one being started, else (after ``launch_grace`` while others are leased)
        a new one. Raises what launching raises."""
        warm = await self._acquire()
        self._leased += 1
        return warm

    async def _acquire(self) -> WarmExecutor:
        while self._idle:
            warm = self._idle.pop()
            if warm.alive:
                return warm
            self._retire(warm)
        if self._starting:  # a prewarm is on its way: cheaper to wait for it than to start another
            done, _ = await asyncio.wait(set(self._starting), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                warm_or_none = task.result()
                if warm_or_none is not None and warm_or_none in self._idle:
                    self._idle.remove(warm_or_none)
                    if warm_or_none.alive:
                        return warm_or_none
                    self._retire(warm_or_none)
            return await self._acquire()
        if self.launch_grace > 0 and self._leased > 0 and await self._returned_within(self.launch_grace):
            return await self._acquire()
        return await self._launch()

    async def _returned_within(self, seconds: float) -> bool:
        """Wait until a leased process comes back idle (``True``), or one is retired instead or ``seconds`` pass
        (``False``: start a new one)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError:
            return False
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return bool(self._idle)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, warm: WarmExecutor, *, reusable: bool) -> None:
        """Give ``warm`` back after one run; retire it when it is used up or not ``reusable``."""
        warm.runs += 1
        self._leased = max(0, self._leased - 1)
        if not reusable or not warm.alive:
            self.replaced += 1
            self._retire(warm)
        elif warm.runs >= self.recycle_after or self._closed or len(self._idle) >= self.size:
            self._retire(warm)
        else:
            self._idle.append(warm)
            self._wake_one()
            return
        if self._waiters:  # nothing came back: a waiter should start its own process now
            self._wake_one()

    def _retire(self, warm: WarmExecutor) -> None:
        self.retired += 1
        task = asyncio.create_task(self._shutdown(warm))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _shutdown(self, warm: WarmExecutor) -> None:
        proc = warm.proc
        if proc.returncode is None and warm.fresh:
            # prewarmed and never used: it still waits for line 1, where a frame (or EOF) is a bad request;
            # SIGTERM ends it (and its browser) quietly
            await proc.stop(_STOP_GRACE)
        elif proc.returncode is None:
            with contextlib.suppress(Exception):
                await proc.send(Shutdown())
            with contextlib.suppress(Exception):
                await proc.close_stdin()
            code = await proc.wait(_RETIRE_WAIT)
            if code is None:
                await proc.stop(_STOP_GRACE)
        else:
            await proc.wait(1.0)
        proc.reap_group()

    def kill_all(self) -> None:
        """SIGKILL every idle process group (second signal)."""
        for warm in self._idle:
            warm.proc.kill_group()

    async def close(self) -> None:
        """Retire every idle process and wait for all retirements (bounded by their own timeouts)."""
        self._closed = True
        for task in list(self._starting):
            with contextlib.suppress(BaseException):
                await task
        idle, self._idle = self._idle, []
        for warm in idle:
            self._retire(warm)
        while self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)
