"""One run, start to finish (CONTRACT_RUN lifecycle steps 2-13). The CLI adds notification, report and summary.

``execute_run`` is the runtime's public entry point; the CLI and orchestrators (Temporal) call it in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

import attrs
from loguru import logger

from quarry_core.errors import ExecutorLaunchError, QuarryError
from quarry_core.interfaces import (
    EventSinkConfig,
    ExecutorConfig,
    IngestionPolicy,
    PolicyConfig,
    PolicyContext,
    PolicyStats,
    RunInfo,
    RunOutcome,
    RunPartition,
    RunStorage,
    SidecarFile,
    StorageConfig,
)
from quarry_core.outcomes import EXIT_CODES, Outcome
from quarry_core.plugins import PluginHost
from quarry_core.protocol.frames import Cancel, Event, RunRequest, RunRequestFrame
from quarry_core.protocol.values import format_ts
from quarry_core.runtime import records
from quarry_core.runtime.artifacts import ArtifactStats
from quarry_core.runtime.browser import BrowserEndpointError, provision_browser
from quarry_core.runtime.control import RunControl
from quarry_core.runtime.ingest import Ingestor, IngestResult, RunIdentity
from quarry_core.runtime.metrics import Collector
from quarry_core.runtime.notifications import NotificationSettings
from quarry_core.runtime.outcome import Classification, classify
from quarry_core.runtime.pool import ExecutorSource, WarmExecutor
from quarry_core.runtime.process import ExecutorProcess, default_stderr_printer
from quarry_core.runtime.proxying import ProxySettings, RunProxy, report_fields
from quarry_core.runtime.sidecars import SidecarWriter
from quarry_core.runtime.sink import LodeSink, build_event_sinks

__all__ = ["RunReport", "RunSettings", "execute_run"]

NORMAL_EXIT_WAIT = 10.0
STOP_GRACE = 2.0
RECORD_TIMEOUT = 30.0


@attrs.frozen
class RunSettings:
    """Everything one run needs. Validated by the caller (the CLI does it in the contract's order)."""

    script: str
    run_id: str
    source: str
    job: Mapping[str, Any] = attrs.field(factory=dict)
    attempt: int = 1
    job_id: str | None = None
    parent_run_id: str | None = None
    spawned_by_run_id: str | None = None
    depth: int = 0
    root_run_id: str | None = None
    category: str = "default"
    policy: PolicyConfig = attrs.field(factory=PolicyConfig)
    storage: StorageConfig = attrs.field(factory=StorageConfig)
    executor: str = "playwright"
    executor_python: str = sys.executable
    resolve_from: str | None = None
    timeout: float = 0.0
    cancel_grace: float = 5.0
    browser_ws_endpoint: str | None = None
    #: use (or start) the browser reuse server when no endpoint is given (the CLI's default; ``--no-browser-reuse``)
    browser_reuse: bool = False
    #: the browser is provisioned already (fan-out children share the root's): no health check, no reuse lookup
    browser_provisioned: bool = False
    #: the run's proxy pool and request (CONTRACT_PROXY); ``None`` = no proxy
    proxy: ProxySettings | None = None
    #: ``--capture-frames``: record every frame read from the root run's executor to this file (overwritten)
    capture_frames: str | None = None
    #: ``--no-error-snapshot`` sets False: no screenshot/HTML sidecar files on ``script_error``
    error_snapshot: bool = True
    #: event sinks besides Lode (CONTRACT_INTEGRATION §4); children inherit them with the settings
    event_sinks: tuple[EventSinkConfig, ...] = ()
    #: ``--no-lode-events`` sets False (artifact commit records still go to Lode)
    lode_events: bool = True
    #: ``--event-sink-lode-delivery``
    lode_delivery: str = "mandatory"
    #: the notification adapter (step 14, run by the CLI after the run); ``None`` = no notification
    notification: NotificationSettings | None = None


@attrs.frozen
class RunReport:
    """The result of one run: outcome, counts and everything the summary, report and records show."""

    settings: RunSettings
    outcome: Outcome
    message: str
    exit_code: int
    started_at: str
    ended_at: str
    duration_ms: int
    day: str
    event_count: int
    policy_stats: PolicyStats
    artifacts: ArtifactStats
    sidecar_files: tuple[SidecarFile, ...]
    metrics: Mapping[str, int]
    storage_backend: str
    storage_root: str
    executor_version: str
    error_type: str | None = None
    stack: str | None = None
    terminal_summary: Mapping[str, Any] | None = None
    stderr_tail: str = ""
    ipc: Mapping[str, Any] = attrs.field(factory=dict)
    #: fan-out roots: the crawl's counters and children (CONTRACT_RUN report ``fan_out``)
    fan_out: Mapping[str, Any] | None = None
    #: the proxy pool, the redacted endpoint in use at the end, rotations, every endpoint used (in order)
    proxy_pool: str | None = None
    proxy_used: Mapping[str, Any] | None = None
    proxy_rotations: int = 0
    proxy_endpoints: tuple[Mapping[str, Any], ...] = ()

    @property
    def run_id(self) -> str:
        return self.settings.run_id


def _now() -> datetime:
    return datetime.now(UTC)


def _launch_error_text(exc: Exception) -> str:
    """Why an executor could not be had: our own errors as they are, anything else with its type."""
    if isinstance(exc, (ExecutorLaunchError, QuarryError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


#: script path → (stat signature, sha256): a crawl's children run the same few scripts
_SCRIPT_HASHES: dict[str, tuple[tuple[int, int, int, int], str]] = {}


def _sha256_file(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _SCRIPT_HASHES.get(path)
    if cached is not None and cached[0] == signature:
        return cached[1]
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    if len(_SCRIPT_HASHES) >= 256:
        _SCRIPT_HASHES.clear()
    _SCRIPT_HASHES[path] = (signature, h.hexdigest())
    return h.hexdigest()


class _Run:
    """State of one run while it executes."""

    def __init__(
        self,
        settings: RunSettings,
        host: PluginHost,
        control: RunControl,
        *,
        on_enqueue: Callable[[RunSettings, Event], Awaitable[None]] | None = None,
        pool: ExecutorSource | None = None,
    ) -> None:
        self.s = settings
        self.host = host
        self.control = control
        self.on_enqueue = on_enqueue
        self.pool = pool
        self.warm: WarmExecutor | None = None
        self.reusable = False
        # what the run saw of its executor, taken before a warm process goes back to the pool
        self.stderr_tail = ""
        self.last_stderr_line = ""
        self.frames_base = 0
        self.bytes_base = 0
        self.frames = 0
        self.bytes_in = 0
        self.metrics = Collector()
        self.started = _now()
        self.started_mono = time.monotonic()
        self.spawned_mono = self.started_mono  # the timeout runs from here (a warm run: from getting its executor)
        self.day = self.started.strftime("%Y-%m-%d")
        self.storage: RunStorage | None = None
        self.sink: LodeSink | None = None
        self.storage_protocol = "file"
        self.storage_root = ""
        self.policy: IngestionPolicy | None = None
        self.executor_version = ""
        self.proc: ExecutorProcess | None = None
        self.ingestor: Ingestor | None = None
        self.sidecars: SidecarWriter | None = None
        self.timed_out = False
        self.canceled_by: str | None = None
        self.flush_error: str | None = None
        self.launch_error: str | None = None
        self.browser_error: str | None = None
        self.proxy: RunProxy | None = None
        job_text = json.dumps(dict(settings.job), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self.job_text = job_text
        self.script_sha256 = _sha256_file(settings.script)

    @property
    def info(self) -> RunInfo:
        s = self.s
        return RunInfo(
            run_id=s.run_id,
            attempt=s.attempt,
            source=s.source,
            category=s.category,
            day=self.day,
            script=s.script,
            policy=s.policy.name,
            job_id=s.job_id,
            parent_run_id=s.parent_run_id,
            spawned_by_run_id=s.spawned_by_run_id,
            depth=s.depth,
        )

    def identity(self) -> RunIdentity:
        s = self.s
        return RunIdentity(
            run_id=s.run_id,
            attempt=s.attempt,
            job_id=s.job_id,
            parent_run_id=s.parent_run_id,
            spawned_by_run_id=s.spawned_by_run_id,
            depth=s.depth or None,
        )

    def request(self) -> RunRequest:
        s = self.s
        return RunRequest(
            run_id=s.run_id,
            attempt=s.attempt,
            script=s.script,
            job=dict(s.job),
            job_id=s.job_id,
            parent_run_id=s.parent_run_id,
            spawned_by_run_id=s.spawned_by_run_id,
            depth=s.depth or None,
            browser_ws_endpoint=s.browser_ws_endpoint,
            proxy=self.proxy.endpoint_dict if self.proxy is not None else None,
            storage={
                "dataset": s.storage.dataset,
                "source": s.source,
                "category": s.category,
                "day": self.day,
                "run_id": s.run_id,
            },
            error_snapshot=None if s.error_snapshot else False,
        )

    # ------------------------------------------------------------------ steps

    async def select_proxy(self) -> None:
        """Select the run's proxy endpoint (CONTRACT_PROXY §4). A root's failure raises ``ConfigError``
        (``proxy selection failed: …``, exit 4); a fan-out child's ends it ``executor_crash``."""
        s = self.s
        if s.proxy is None:
            return
        try:
            job_id = s.job_id or s.root_run_id  # children carry the root's
            self.proxy = await RunProxy.start(s.proxy, self.host, run_id=s.run_id, job=s.job, job_id=job_id)
        except QuarryError as exc:
            if not s.depth:
                raise
            self.launch_error = str(exc)

    def build(self) -> None:
        s = self.s
        backend_rec = self.host.storage_backend(s.storage.backend)
        backend = backend_rec.record.factory(s.storage)
        self.storage_protocol = getattr(backend, "protocol", "file")
        self.storage_root = getattr(backend, "root_url", s.storage.path)
        self.storage = backend.open_run(RunPartition(s.source, s.category, self.day, s.run_id))
        sink = LodeSink(
            self.storage,
            s.policy.name,
            self.metrics,
            event_sinks=build_event_sinks(self.host, s.event_sinks, source=s.source, category=s.category),
            lode_events=s.lode_events,
            lode_delivery=s.lode_delivery,
        )
        self.sink = sink
        policy_rec = self.host.ingestion_policy(s.policy.name)
        ctx = PolicyContext(run_id=s.run_id, logger=logger.bind(run_id=s.run_id), policy=s.policy.name)
        self.policy = policy_rec.record.factory(s.policy, sink, ctx)

    async def write_running_record(self) -> None:
        assert self.storage is not None
        rec = records.run_record(self, outcome=None)
        try:
            await asyncio.wait_for(self.storage.write_records({"runs": [rec]}), RECORD_TIMEOUT)
        except Exception as exc:
            logger.warning("Warning: could not write the running run record: {}", exc)

    async def launch(self) -> ExecutorProcess | None:
        s = self.s
        if self.pool is not None:
            return await self._lease(self.pool)
        try:
            rec = self.host.executor(s.executor)
            launcher = rec.record.factory(ExecutorConfig(python=s.executor_python, resolve_from=s.resolve_from))
            self.executor_version = getattr(launcher, "version", rec.version)
            env = dict(os.environ)
            extra = launcher.env()
            env.update(extra)
            proc = await ExecutorProcess.start(launcher.command(False), env, on_stderr=default_stderr_printer)
        except Exception as exc:
            self.launch_error = _launch_error_text(exc)
        if self.launch_error is not None:
            self.metrics.inc("executor_launch_failure_total")
            return None
        self.metrics.inc("executor_launch_success_total")
        self.proc = proc
        return proc

    async def _lease(self, pool: ExecutorSource) -> ExecutorProcess | None:
        """A warm executor from the pool; a launch counts only for the run a fresh process serves first."""
        try:
            warm = await pool.acquire()
        except Exception as exc:
            self.launch_error = _launch_error_text(exc)
        if self.launch_error is not None:
            self.metrics.inc("executor_launch_failure_total")
            return None
        if self.control.canceled.is_set():  # canceled while waiting for its turn: the run never starts
            pool.release(warm, reusable=True)
            self.canceled_by = self.control.signal_name
            return None
        if warm.fresh:
            self.metrics.inc("executor_launch_success_total")
        self.executor_version = warm.version
        warm.proc.reset_stderr_tail()
        self.spawned_mono = time.monotonic()
        self.frames_base = warm.proc.reader.frames
        self.bytes_base = warm.proc.reader.bytes
        self.warm = warm
        self.proc = warm.proc
        return warm.proc

    def release(self) -> None:
        """Keep what this run saw of its executor; hand a warm one back (reusable only after a clean end)."""
        proc = self.proc
        if proc is not None:
            self.stderr_tail = proc.stderr_tail
            self.last_stderr_line = proc.last_stderr_line
            self.frames = proc.reader.frames - self.frames_base
            self.bytes_in = proc.reader.bytes - self.bytes_base
        warm, self.warm = self.warm, None
        if warm is not None and self.pool is not None:
            self.pool.release(warm, reusable=self.reusable)

    def capture_file(self) -> BinaryIO | None:
        """``--capture-frames``: the file the root run's frames are recorded to (children are not captured)."""
        path = self.s.capture_frames
        if path is None or self.s.depth > 0:
            return None
        try:
            return open(path, "wb")  # closed when ingestion ends (supervise)
        except OSError as exc:
            logger.warning("Warning: cannot capture frames to {}: {}", path, exc)
            return None

    async def supervise(self, proc: ExecutorProcess) -> int:
        """Send the request, ingest, handle timeout and cancellation, and reap the executor."""
        assert self.policy is not None and self.storage is not None
        s = self.s
        sidecars = SidecarWriter(self.storage, self.metrics, proc.send)
        self.sidecars = sidecars
        ingestor = Ingestor(
            identity=self.identity(),
            policy=self.policy,
            metrics=self.metrics,
            sidecars=sidecars,
            send_control=proc.send,
            on_rotate_proxy=self.proxy.on_rotate if self.proxy is not None else None,
            on_enqueue=self._enqueue if self.on_enqueue is not None else None,
            stop_on_run_result=self.warm is not None,
            capture=self.capture_file(),
        )
        self.ingestor = ingestor
        try:
            if self.warm is not None and not self.warm.fresh:
                await proc.send(RunRequestFrame(self.request()))
            else:
                await proc.send_bytes(self.request().to_json_line())
        except Exception as exc:
            logger.debug("could not send the run request: {}", exc)
        ingest_task = asyncio.create_task(ingestor.run(proc.reader))
        deadline = self.spawned_mono + s.timeout if s.timeout > 0 else None
        cancel_wait = asyncio.create_task(self.control.canceled.wait())
        try:
            waiters: set[asyncio.Future[Any]] = {ingest_task, cancel_wait}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if ingest_task not in done:
                reason = "signal" if cancel_wait in done else "timeout"
                if reason == "timeout":
                    self.timed_out = True
                else:
                    self.canceled_by = self.control.signal_name
                await self._cancel(proc, ingest_task, reason)
            await ingest_task
        finally:
            cancel_wait.cancel()
            if ingestor.capture is not None:
                ingestor.capture.close()
        res = ingestor.result
        if self.warm is not None:
            code = await self._end_warm(proc, res)
        elif res.fatal:
            ingestor.stopping = True
            code = await proc.stop(STOP_GRACE)
        else:
            await proc.close_stdin()
            waited = await proc.wait(NORMAL_EXIT_WAIT)
            code = waited if waited is not None else await proc.stop(STOP_GRACE)
            proc.reap_group()
        sidecars.check_complete()
        return code

    async def _enqueue(self, event: Event) -> None:
        assert self.on_enqueue is not None
        await self.on_enqueue(self.s, event)

    async def _end_warm(self, proc: ExecutorProcess, res: IngestResult) -> int:
        """A warm run's verdict: its ``run_result`` status as a code while the process lives, else its exit."""
        assert self.ingestor is not None
        if res.fatal:
            self.ingestor.stopping = True
            return await proc.stop(STOP_GRACE)
        if res.run_result is not None and proc.returncode is None:
            status = res.run_result.status
            clean = not (self.timed_out or self.canceled_by) and status != "crash"
            self.reusable = clean and self.control.signal_name is None
            return {"completed": 0, "error": 1}.get(status, 2)
        waited = await proc.wait(NORMAL_EXIT_WAIT)  # the process ended (or stopped talking) mid-run
        return waited if waited is not None else await proc.stop(STOP_GRACE)

    async def _cancel(self, proc: ExecutorProcess, ingest_task: asyncio.Task[IngestResult], reason: str) -> None:
        s = self.s
        grace = s.cancel_grace
        with contextlib.suppress(Exception):
            await proc.send(Cancel(run_id=s.run_id, reason=reason, grace_ms=int(grace * 1000)))
        killed = asyncio.create_task(self.control.killed.wait())
        done, _ = await asyncio.wait({ingest_task, killed}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        killed.cancel()
        if ingest_task not in done:
            assert self.ingestor is not None
            self.ingestor.stopping = True
            if self.control.killed.is_set():
                proc.kill_group()
            else:
                await proc.stop(STOP_GRACE)

    async def final_flush(self) -> None:
        assert self.policy is not None
        budget = self.s.policy.final_flush_timeout
        try:
            if self.control.killed.is_set():
                budget = min(budget, 1.0)
            await asyncio.wait_for(self.policy.flush("termination"), budget if budget > 0 else None)
        except TimeoutError:
            self.flush_error = f"final flush timed out after {budget:g}s"
        except Exception as exc:
            self.flush_error = str(exc) or type(exc).__name__
        try:
            await self.policy.close()
        except Exception as exc:
            logger.warning("Warning: policy close failed: {}", exc)


async def execute_run(
    settings: RunSettings,
    host: PluginHost,
    control: RunControl | None = None,
    *,
    on_enqueue: Callable[[RunSettings, Event], Awaitable[None]] | None = None,
    pool: ExecutorSource | None = None,
    fan_out: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
    executor_done: Callable[[], None] | None = None,
) -> RunReport:
    """Run one script to its outcome: build, record, launch, ingest, flush, classify, record, observe.

    Configuration errors (unknown plugins) raise before anything is written; everything after the first
    record is captured in the returned :class:`RunReport`.

    Fan-out (:mod:`quarry_core.runtime.fanout`) passes ``on_enqueue`` (called with this run's settings for
    every ingested ``enqueue``, before the policy), ``pool`` (warm executors instead of a cold one) and, for
    the root, ``fan_out`` (awaited before the final run record; its counters go into record and report).
    ``executor_done`` is called once the run no longer needs its executor (before flush and records), so the
    coordinator can start the next child while this one finishes its bookkeeping.
    """
    run = _Run(settings, host, control or RunControl(), on_enqueue=on_enqueue, pool=pool)
    await run.select_proxy()  # a root's failure raises ConfigError: nothing written yet
    run.build()  # may raise ConfigError-like plugin errors: nothing written yet
    assert run.storage is not None and run.policy is not None
    run.metrics.inc("runs_started_total")
    await host.notify_run_started(run.info)
    await run.write_running_record()

    exit_code: int | None = None
    if run.launch_error is None and not settings.browser_provisioned:
        try:  # step 5: an unreachable explicit endpoint ends the run before the executor starts
            run.s = settings = await provision_browser(settings, host)
        except BrowserEndpointError as exc:
            run.browser_error = str(exc)
    try:
        proc = await run.launch() if run.launch_error is None and run.browser_error is None else None
        if proc is not None:
            try:
                exit_code = await run.supervise(proc)
            except BaseException:
                run.reusable = False
                with contextlib.suppress(Exception):
                    await proc.stop(0.5)
                raise
            finally:
                run.release()
    finally:
        if executor_done is not None:
            executor_done()
    await run.final_flush()

    ingest = run.ingestor.result if run.ingestor is not None else IngestResult()
    cls: Classification = classify(
        ingest,
        exit_code=exit_code,
        launch_error=run.launch_error,
        browser_error=run.browser_error,
        signal_name=run.canceled_by,
        flush_error=run.flush_error,
        timeout=settings.timeout,
        timed_out=run.timed_out,
        last_stderr_line=run.last_stderr_line,
    )
    return await _finish(run, cls, ingest, proc, exit_code, fan_out)


async def _finish(
    run: _Run,
    cls: Classification,
    ingest: IngestResult,
    proc: ExecutorProcess | None,
    exit_code: int | None,
    fan_out: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
) -> RunReport:
    s = run.s
    assert run.storage is not None and run.policy is not None
    m = run.metrics
    outcome = cls.outcome
    counter = {
        Outcome.SUCCESS: "runs_completed_total",
        Outcome.SCRIPT_ERROR: "runs_failed_total",
        Outcome.EXECUTOR_CRASH: "runs_crashed_total",
        Outcome.POLICY_FAILURE: "runs_failed_total",
        Outcome.VERSION_MISMATCH: "runs_failed_total",
        Outcome.CANCELED: "runs_canceled_total",
    }[outcome]
    m.inc(counter)
    if outcome is Outcome.EXECUTOR_CRASH and run.launch_error is None:
        m.inc("executor_crash_total")
    stats = run.policy.stats()
    m.set("events_received_total", stats.events_received)
    m.set("events_persisted_total", stats.events_persisted)
    m.set("events_dropped_total", stats.events_dropped)
    m.set("events_unflushed_total", stats.events_unflushed)
    m.set("lode_write_retry_total", stats.write_retries + run.storage.write_retries)
    m.set("policy_flushes_total", stats.flush_count)
    m.set("policy_flush_failures_total", stats.flush_failures)
    if proc is not None:
        m.set("ipc_frames_received_total", run.frames)  # this run's frames (a warm process counts on)
    code = (run.control.exit_code or 130) if outcome is Outcome.CANCELED else EXIT_CODES[outcome]
    ended = _now()
    duration_ms = int((time.monotonic() - run.started_mono) * 1000)
    artifacts = run.ingestor.artifacts.stats() if run.ingestor is not None else ArtifactStats()
    sidecar_files = tuple(run.sidecars.files) if run.sidecars is not None else ()
    ipc = {
        "frames_received": run.frames,
        "bytes_received": run.bytes_in,
        "decode_errors": m.get("ipc_decode_errors_total"),
        "last_error": ingest.last_error,
    }
    terminal_summary: Mapping[str, Any] | None = None
    if ingest.terminal is not None:
        terminal_summary = dict(ingest.terminal.payload)
    report = RunReport(
        settings=s,
        outcome=outcome,
        message=cls.message,
        exit_code=code,
        started_at=format_ts(run.started),
        ended_at=format_ts(ended),
        duration_ms=duration_ms,
        day=run.day,
        event_count=ingest.last_seq,
        policy_stats=stats,
        artifacts=artifacts,
        sidecar_files=sidecar_files,
        metrics=m.snapshot(),
        storage_backend=run.storage_protocol,
        storage_root=run.storage_root,
        executor_version=run.executor_version,
        error_type=cls.error_type,
        stack=cls.stack,
        terminal_summary=terminal_summary,
        stderr_tail=run.stderr_tail,
        ipc=ipc,
        **report_fields(run.proxy, ingest.run_result.proxy_used if ingest.run_result is not None else None),
    )
    if fan_out is not None:
        report = attrs.evolve(report, fan_out=await fan_out())
    try:
        await asyncio.wait_for(
            run.storage.write_records(
                {
                    "runs": [records.run_record(run, outcome=outcome, report=report)],
                    "metrics": [records.metrics_record(run, report)],
                }
            ),
            RECORD_TIMEOUT,
        )
    except Exception as exc:
        logger.warning("Warning: could not write the final run and metrics records: {}", exc)
    with contextlib.suppress(Exception):
        await run.storage.close()
    if run.proxy is not None:
        await run.proxy.aclose()
    await run.host.notify_run_finished(
        run.info,
        RunOutcome(
            outcome=outcome.value,
            message=cls.message,
            exit_code=code,
            event_count=report.event_count,
            duration_ms=duration_ms,
        ),
    )
    return report
