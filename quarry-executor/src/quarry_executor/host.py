"""The script host: one run's lifecycle (runtime.md §14.2) and its cancellation (§14.3).

1. ``prepare(job, run)``: continue (maybe with a new job) or skip (``run_complete{summary: {skipped: true}}``,
   ``run_result``, done: no browser, no other hook). Raising or a bad value → crash without a terminal.
2. Browser, context (with the run's proxy), page; failure → crash.
3. ``before_run(ctx)`` → ``run(ctx)`` → ``after_run(ctx)``.
4. On an exception from 3: ``on_error(error, ctx)`` if no terminal was written (its errors swallowed).
5. ``before_terminal(signal, ctx)`` if the channel is healthy and no terminal was written (errors swallowed).
6. Auto-terminal if none and healthy: ``run_complete`` or ``run_error{error_type: "script_error"}``.
7. ``cleanup(ctx)`` (errors swallowed; emits raise ``TerminalEventError``).
8. Status → ``run_result``; close page, context and a launched browser (or disconnect); exit 0/1/2.

A ``cancel`` control frame or SIGTERM cancels the task running the current hook or the script, skips
``after_run``, ``on_error`` and ``before_terminal``, writes ``run_error{error_type: "canceled" | "timeout"}`` if
healthy and no terminal was written, runs ``cleanup`` within the grace and ends with ``run_result{status:
"error"}`` and exit 1.
"""

from __future__ import annotations

import asyncio
import copy
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from quarry_core.errors import ScriptLoadError
from quarry_core.gctuning import freeze_startup
from quarry_core.protocol import MAX_STACK_SIZE, Cancel, RunRequest, RunResult, encode_frame
from quarry_core.sdk import PrepareResult, RunMeta, TerminalSignal
from quarry_executor.browser import BrowserSession, redact_proxy
from quarry_executor.channel import Channel
from quarry_executor.context import RunContext
from quarry_executor.diag import info, warn
from quarry_executor.emit import Emitter, RunStream
from quarry_executor.guard import new_guard_run
from quarry_executor.loader import LoadedScript, call_maybe_async, load_script
from quarry_executor.storage import Storage

__all__ = ["ERROR_SNAPSHOT_TIMEOUT", "EXIT_CODES", "SIGTERM_GRACE", "RunStatus", "ScriptHost", "format_stack"]

#: exit code per ``run_result`` status (wire.md §11)
EXIT_CODES = {"completed": 0, "error": 1, "crash": 2}

#: seconds of grace after SIGTERM
SIGTERM_GRACE = 2.0

#: bound on saving the screenshot and HTML of a failed run
ERROR_SNAPSHOT_TIMEOUT = 15.0

#: time kept back from a cancel grace for ``run_result`` and closing
_GRACE_RESERVE = 0.4

_CLOSE_TIMEOUT = 10.0
_MAX_MESSAGE = 64 * 1024


def format_stack(exc: BaseException, limit: int = MAX_STACK_SIZE) -> str:
    """The traceback of ``exc``, cut to its last ``limit`` UTF-8 bytes."""
    text = "".join(traceback.format_exception(exc))
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    marker = "... (traceback truncated)\n"
    tail = data[len(data) - (limit - len(marker)) :]
    return marker + tail.decode("utf-8", "ignore")


def _error_message(exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "... (truncated)"
    return message


@attrs.frozen
class RunStatus:
    """The run's verdict as sent in ``run_result``."""

    status: str
    message: str
    error_type: str | None = None
    stack: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


@attrs.define
class _CancelRequest:
    reason: str
    deadline: float

    @property
    def error_type(self) -> str:
        return "timeout" if self.reason == "timeout" else "canceled"

    @property
    def message(self) -> str:
        return f"run canceled ({self.reason})"


class _Crash(Exception):
    """Ends the run as a crash (internal control flow of the host)."""

    def __init__(self, message: str, stack: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stack = stack


class ScriptHost:
    """Runs one script for one run request over a :class:`~quarry_executor.channel.Channel`."""

    def __init__(
        self,
        request: RunRequest,
        channel: Channel,
        *,
        open_browser: Callable[[RunRequest], Awaitable[BrowserSession]] | None = None,
        owns_session: bool = True,
        load: Callable[[str], LoadedScript] = load_script,
    ) -> None:
        """``open_browser``/``owns_session``/``load``: a warm executor passes its shared browser (kept open
        after the run; only the run's page and context are closed) and its script cache."""
        self.request = request
        self._owns_session = owns_session
        self._load = load
        self.channel = channel
        self.stream = RunStream(channel, request)
        self.emitter = Emitter(self.stream, current_proxy=self._current_proxy)
        self.storage = Storage(self.stream)
        self.run_meta = RunMeta(
            run_id=request.run_id,
            attempt=request.attempt,
            job_id=request.job_id,
            parent_run_id=request.parent_run_id,
            spawned_by_run_id=request.spawned_by_run_id,
            depth=request.depth or 0,
        )
        self.script: LoadedScript | None = None
        self.session: BrowserSession | None = None
        self.ctx: RunContext | None = None
        self._open_browser = open_browser or (lambda r: BrowserSession.open(r.browser_ws_endpoint))
        self._crash: _Crash | None = None
        self._cancel: _CancelRequest | None = None
        self._cancel_event = asyncio.Event()
        self._cancel_error_written = False
        self._main_task: asyncio.Task[None] | None = None

    # ---- cancellation

    def on_cancel_frame(self, frame: Cancel) -> None:
        if frame.run_id and frame.run_id != self.request.run_id:
            warn(f"cancel for another run ({frame.run_id}) ignored")
            return
        self.request_cancel(frame.reason, frame.grace_ms / 1000.0)

    def request_cancel(self, reason: str, grace: float) -> None:
        """Cancel the run (first request wins): the running hook or script is cancelled at once."""
        if self._cancel is not None:
            return
        loop = asyncio.get_running_loop()
        self._cancel = _CancelRequest(reason=reason, deadline=loop.time() + max(grace, 0.0))
        info(f"cancel requested ({reason}, grace {grace:g} s)")
        self._cancel_event.set()
        task = self._main_task
        if task is not None and not task.done():
            task.cancel()

    def _remaining(self) -> float | None:
        if self._cancel is None:
            return None
        return max(0.0, self._cancel.deadline - asyncio.get_running_loop().time() - _GRACE_RESERVE)

    def _current_proxy(self) -> Any:
        if self.ctx is not None:
            return self.ctx.proxy
        return redact_proxy(self.request.proxy)

    # ---- the run

    async def execute(self) -> int:
        """Run the whole lifecycle; return the exit code."""
        new_guard_run()
        main = asyncio.get_running_loop().create_task(self._main(), name="quarry-run")
        self._main_task = main
        canceled = await self._wait_main(main)
        if canceled:
            await self._finish_canceled()
        else:
            await self._cleanup()
        status = self._status(canceled)
        await self._send_result(status)
        await self._close()
        if status.status == "crash":
            info(f"run crashed: {status.message}")
        return status.exit_code

    async def _wait_main(self, main: asyncio.Task[None]) -> bool:
        """Wait for the main task; ``True`` if a cancel request ended it (or outlived it)."""
        cancel_wait = asyncio.get_running_loop().create_task(self._cancel_event.wait())
        try:
            await asyncio.wait({main, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancel_wait.cancel()
        if not main.done():
            # canceled: give the task part of the grace to unwind (a script may swallow the cancellation)
            remaining = self._remaining() or 0.0
            await asyncio.wait({main}, timeout=remaining / 2)
            if not main.done():
                warn("the script did not stop after cancellation; finishing the run without it")
                return True
        if main.cancelled():
            return self._cancel is not None
        exc = main.exception()
        if exc is not None:  # a bug in the host
            self._crash = _Crash(f"internal error: {type(exc).__name__}: {exc}", format_stack(exc))
        return False

    async def _main(self) -> None:
        try:
            await self._lifecycle()
        except _Crash as crash:
            self._crash = crash

    async def _lifecycle(self) -> None:
        request = self.request
        try:
            self.script = self._load(request.script)
        except ScriptLoadError as exc:
            raise _Crash(str(exc)) from None
        script = self.script
        job: dict[str, Any] = copy.deepcopy(request.job)

        # 1. prepare
        prepare = script.hook("prepare")
        if prepare is not None:
            try:
                result = await call_maybe_async(prepare, copy.deepcopy(job), self.run_meta)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                raise _Crash(
                    f"prepare hook failed: {type(exc).__name__}: {_error_message(exc)}", format_stack(exc)
                ) from None
            action, new_job, reason = _interpret_prepare(result)
            if action == "skip":
                summary: dict[str, Any] = {"skipped": True}
                if reason is not None:
                    summary["reason"] = reason
                await self.emitter.run_complete(summary)
                return
            if new_job is not None:
                job = dict(new_job)

        # 2. browser, context, page
        try:
            self.session = await self._open_browser(request)
            browser_context, page = await self.session.new_page(request.proxy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _Crash(f"browser launch failed: {type(exc).__name__}: {exc}") from None
        ctx = RunContext(
            job=job,
            run=self.run_meta,
            emit=self.emitter,
            storage=self.storage,
            session=self.session,
            browser_context=browser_context,
            page=page,
            proxy=request.proxy,
        )
        self.ctx = ctx
        self.emitter.bind_proxy(ctx.apply_proxy, lambda: ctx.proxy)

        # start-up is over (Playwright, the browser, the script): full collections skip it from here
        freeze_startup()

        # 3. before_run -> run -> after_run
        error: BaseException | None = None
        try:
            hook = script.hook("before_run")
            if hook is not None:
                await call_maybe_async(hook, ctx)
            await script.run(ctx)
            hook = script.hook("after_run")
            if hook is not None:
                await call_maybe_async(hook, ctx)
        except asyncio.CancelledError as exc:
            if self._cancel is not None or _being_cancelled():
                raise
            error = exc
        except BaseException as exc:
            error = exc
        if self._cancel is not None:  # the script swallowed the cancellation: the rest is skipped anyway
            raise asyncio.CancelledError

        stream = self.stream
        # 4. on_error
        if error is not None and stream.terminal is None:
            hook = script.hook("on_error")
            if hook is not None:
                await self._swallow("on_error", hook, error, ctx)

        # 5. before_terminal
        if stream.healthy and stream.terminal is None:
            hook = script.hook("before_terminal")
            if hook is not None:
                signal = (
                    TerminalSignal(outcome="completed")
                    if error is None
                    else TerminalSignal(outcome="error", error=error)
                )
                await self._swallow("before_terminal", hook, signal, ctx)

        # 6. auto-terminal
        if stream.healthy and stream.terminal is None:
            try:
                if error is None:
                    await self.emitter.run_complete()
                else:
                    extra = await self._error_snapshot(ctx)
                    await self.emitter.host_run_error(
                        "script_error", _error_message(error), format_stack(error), extra=extra
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                warn(f"automatic terminal event failed: {type(exc).__name__}: {exc}")

    async def _error_snapshot(self, ctx: RunContext) -> dict[str, Any] | None:
        """Save a screenshot and the page HTML as sidecar files before the ``script_error`` terminal (beyond
        upstream); returns the ``run_error`` payload key naming them, or None when turned off. Never raises
        (a failed part is named under ``error``), bounded by :data:`ERROR_SNAPSHOT_TIMEOUT`."""
        if self.request.error_snapshot is False or not self.stream.healthy:
            return None
        saved: dict[str, Any] = {}
        errors: list[str] = []
        try:
            async with asyncio.timeout(ERROR_SNAPSHOT_TIMEOUT):
                page = ctx.page
                for part, filename, content_type, capture in (
                    ("screenshot", "quarry-error-screenshot.png", "image/png", lambda: page.screenshot(full_page=True)),
                    ("html", "quarry-error-page.html", "text/html; charset=utf-8", page.content),
                ):
                    try:
                        data = await capture()
                        body = data.encode("utf-8") if isinstance(data, str) else data
                        result = await self.storage.put(filename, body, content_type=content_type)
                        saved[part] = {"filename": filename, "key": result.key, "size": len(body)}
                    except TimeoutError:
                        raise
                    except Exception as exc:
                        errors.append(f"{part}: {type(exc).__name__}: {exc}")
        except TimeoutError:
            errors.append(f"timed out after {ERROR_SNAPSHOT_TIMEOUT:g} s")
        if errors:
            saved["error"] = "; ".join(errors)[:1000]
            warn(f"error snapshot incomplete: {saved['error']}")
        return {"error_snapshot": saved}

    async def _swallow(self, name: str, hook: Callable[..., Any], *args: Any) -> None:
        try:
            await call_maybe_async(hook, *args)
        except asyncio.CancelledError:
            if self._cancel is not None or _being_cancelled():
                raise
            warn(f"{name} hook was cancelled (ignored)")
        except BaseException as exc:
            warn(f"{name} hook raised {type(exc).__name__}: {exc} (ignored)")

    async def _cleanup(self) -> None:
        """``cleanup(ctx)`` after a normal end; a cancel arriving meanwhile bounds it by the grace."""
        if self.ctx is None or self.script is None:
            return
        hook = self.script.hook("cleanup")
        if hook is None:
            return
        task = asyncio.get_running_loop().create_task(self._swallow("cleanup", hook, self.ctx))
        cancel_wait = asyncio.get_running_loop().create_task(self._cancel_event.wait())
        try:
            await asyncio.wait({task, cancel_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancel_wait.cancel()
        if not task.done():
            await self._bounded(task)

    async def _finish_canceled(self) -> None:
        cancel = self._cancel
        assert cancel is not None
        stream = self.stream
        if stream.healthy and stream.terminal is None:
            try:
                async with asyncio.timeout(self._remaining()):
                    await self.emitter.run_error(cancel.error_type, cancel.message)
                self._cancel_error_written = True
            except TimeoutError:
                warn("could not write the cancellation run_error within the grace")
            except Exception as exc:
                warn(f"cancellation run_error failed: {type(exc).__name__}: {exc}")
        if self.ctx is not None and self.script is not None:
            hook = self.script.hook("cleanup")
            if hook is not None:
                task = asyncio.get_running_loop().create_task(self._swallow("cleanup", hook, self.ctx))
                await self._bounded(task)

    async def _bounded(self, task: asyncio.Task[None]) -> None:
        """Wait for ``task`` within the remaining cancel grace; cancel it when the grace runs out."""
        done, _ = await asyncio.wait({task}, timeout=self._remaining())
        if not done:
            warn("cleanup hook did not finish within the cancel grace")
            task.cancel()

    def _status(self, canceled: bool) -> RunStatus:
        stream = self.stream
        if self._crash is not None:
            return RunStatus("crash", self._crash.message, stack=self._crash.stack)
        if not stream.healthy:
            return RunStatus("crash", f"frame channel failed: {self.channel.failure}")
        if canceled and self._cancel is not None and (stream.terminal is None or self._cancel_error_written):
            return RunStatus("error", self._cancel.message, self._cancel.error_type)
        if stream.terminal == "run_error":
            payload = stream.terminal_payload or {}
            return RunStatus("error", str(payload.get("message", "")), payload.get("error_type"), payload.get("stack"))
        if stream.terminal == "run_complete" and (stream.terminal_payload or {}).get("summary") is not None:
            return RunStatus("completed", "run completed with summary")
        return RunStatus("completed", "run completed")

    async def _send_result(self, status: RunStatus) -> None:
        if not self.stream.healthy:
            return
        endpoint = self.ctx.proxy_endpoint() if self.ctx is not None else self.request.proxy
        redacted = redact_proxy(endpoint)
        proxy_used = None
        if redacted is not None:
            proxy_used = {"protocol": redacted.protocol, "host": redacted.host, "port": redacted.port}
            if redacted.username:
                proxy_used["username"] = redacted.username
        result = RunResult(
            run_id=self.request.run_id,
            status=status.status,
            message=status.message,
            error_type=status.error_type,
            stack=status.stack,
            proxy_used=proxy_used,
        )
        # Unbounded unless canceled: the runtime reads at its policy's pace and stops this process itself when it
        # must; giving up here would drop every frame still queued behind the result.
        timeout = self._remaining() if self._cancel is not None else None
        try:
            async with asyncio.timeout(timeout):
                async with self.stream.lock:
                    await self.stream.write_frame(encode_frame(result))
        except TimeoutError:
            warn("could not write run_result in time")
        except Exception as exc:
            warn(f"could not write run_result: {type(exc).__name__}: {exc}")

    async def _close(self) -> None:
        """Close page and context, then the browser (or disconnect); bounded."""
        timeout = _CLOSE_TIMEOUT if self._cancel is None else max(self._remaining() or 0.0, 0.2)
        try:
            async with asyncio.timeout(timeout):
                if self.ctx is not None and self.session is not None:
                    await self.session.discard(self.ctx.browser_context, self.ctx.page)
                if self.session is not None and self._owns_session:
                    await self.session.close()
        except TimeoutError:
            warn("closing the browser timed out")
        except Exception as exc:
            warn(f"closing the browser failed: {type(exc).__name__}: {exc}")


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _interpret_prepare(result: object) -> tuple[str, Mapping[str, Any] | None, str | None]:
    """``(action, job, reason)`` from a prepare hook's return value, or a crash."""
    action: object
    job: object
    reason: object
    if isinstance(result, PrepareResult):
        action, job, reason = result.action, result.job, result.reason
    elif isinstance(result, Mapping):
        action, job, reason = result.get("action"), result.get("job"), result.get("reason")
    else:
        raise _Crash(f'prepare hook must return PrepareResult(action="continue" | "skip"), got: {result!r}')
    if action not in ("continue", "skip"):
        raise _Crash(f"prepare hook returned unrecognized action: {action}")
    if job is not None and not isinstance(job, Mapping):
        raise _Crash(f"prepare hook returned a job that is not a mapping: {job!r}")
    if reason is not None and not isinstance(reason, str):
        reason = str(reason)
    assert job is None or isinstance(job, Mapping)
    assert reason is None or isinstance(reason, str)
    return str(action), job, reason
