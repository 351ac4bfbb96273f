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
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from loguru import logger

from quarry_core.errors import ExecutorLaunchError, QuarryError
from quarry_core.interfaces import (
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
from quarry_core.protocol.frames import Cancel, RunRequest
from quarry_core.protocol.values import format_ts
from quarry_core.runtime import records
from quarry_core.runtime.artifacts import ArtifactStats
from quarry_core.runtime.control import RunControl
from quarry_core.runtime.ingest import Ingestor, IngestResult, RunIdentity
from quarry_core.runtime.metrics import Collector
from quarry_core.runtime.outcome import Classification, classify
from quarry_core.runtime.process import ExecutorProcess, default_stderr_printer
from quarry_core.runtime.sidecars import SidecarWriter
from quarry_core.runtime.sink import LodeSink

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

    @property
    def run_id(self) -> str:
        return self.settings.run_id


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


class _Run:
    """State of one run while it executes."""

    def __init__(self, settings: RunSettings, host: PluginHost, control: RunControl) -> None:
        self.s = settings
        self.host = host
        self.control = control
        self.metrics = Collector()
        self.started = _now()
        self.started_mono = time.monotonic()
        self.day = self.started.strftime("%Y-%m-%d")
        self.storage: RunStorage | None = None
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
            storage={
                "dataset": s.storage.dataset,
                "source": s.source,
                "category": s.category,
                "day": self.day,
                "run_id": s.run_id,
            },
        )

    # ------------------------------------------------------------------ steps

    def build(self) -> None:
        s = self.s
        backend_rec = self.host.storage_backend(s.storage.backend)
        backend = backend_rec.record.factory(s.storage)
        self.storage_protocol = getattr(backend, "protocol", "file")
        self.storage_root = getattr(backend, "root_url", s.storage.path)
        self.storage = backend.open_run(RunPartition(s.source, s.category, self.day, s.run_id))
        sink = LodeSink(self.storage, s.policy.name, self.metrics)
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
        try:
            rec = self.host.executor(s.executor)
            launcher = rec.record.factory(ExecutorConfig(python=s.executor_python, resolve_from=s.resolve_from))
            self.executor_version = getattr(launcher, "version", rec.version)
            env = dict(os.environ)
            extra = launcher.env()
            env.update(extra)
            proc = await ExecutorProcess.start(launcher.command(False), env, on_stderr=default_stderr_printer)
        except (ExecutorLaunchError, QuarryError) as exc:
            self.launch_error = str(exc)
        except Exception as exc:
            self.launch_error = f"{type(exc).__name__}: {exc}"
        if self.launch_error is not None:
            self.metrics.inc("executor_launch_failure_total")
            return None
        self.metrics.inc("executor_launch_success_total")
        self.proc = proc
        return proc

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
        )
        self.ingestor = ingestor
        try:
            await proc.send_bytes(self.request().to_json_line())
        except Exception as exc:
            logger.debug("could not send the run request: {}", exc)
        ingest_task = asyncio.create_task(ingestor.run(proc.reader))
        deadline = self.started_mono + s.timeout if s.timeout > 0 else None
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
        res = ingestor.result
        if res.fatal:
            ingestor.stopping = True
            code = await proc.stop(STOP_GRACE)
        else:
            await proc.close_stdin()
            waited = await proc.wait(NORMAL_EXIT_WAIT)
            code = waited if waited is not None else await proc.stop(STOP_GRACE)
            proc.reap_group()
        sidecars.check_complete()
        return code

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


async def execute_run(settings: RunSettings, host: PluginHost, control: RunControl | None = None) -> RunReport:
    """Run one script to its outcome: build, record, launch, ingest, flush, classify, record, observe.

    Configuration errors (unknown plugins) raise before anything is written; everything after the first
    record is captured in the returned :class:`RunReport`.
    """
    run = _Run(settings, host, control or RunControl())
    run.build()  # may raise ConfigError-like plugin errors: nothing written yet
    assert run.storage is not None and run.policy is not None
    run.metrics.inc("runs_started_total")
    await host.notify_run_started(run.info)
    await run.write_running_record()

    exit_code: int | None = None
    proc = await run.launch()
    if proc is not None:
        try:
            exit_code = await run.supervise(proc)
        except BaseException:
            with contextlib.suppress(Exception):
                await proc.stop(0.5)
            raise
    await run.final_flush()

    ingest = run.ingestor.result if run.ingestor is not None else IngestResult()
    cls: Classification = classify(
        ingest,
        exit_code=exit_code,
        launch_error=run.launch_error,
        signal_name=run.canceled_by,
        flush_error=run.flush_error,
        timeout=settings.timeout,
        timed_out=run.timed_out,
        last_stderr_line=proc.last_stderr_line if proc is not None else "",
    )
    return await _finish(run, cls, ingest, proc, exit_code)


async def _finish(
    run: _Run, cls: Classification, ingest: IngestResult, proc: ExecutorProcess | None, exit_code: int | None
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
    code = (run.control.exit_code or 130) if outcome is Outcome.CANCELED else EXIT_CODES[outcome]
    ended = _now()
    duration_ms = int((time.monotonic() - run.started_mono) * 1000)
    artifacts = run.ingestor.artifacts.stats() if run.ingestor is not None else ArtifactStats()
    sidecar_files = tuple(run.sidecars.files) if run.sidecars is not None else ()
    ipc = {
        "frames_received": proc.reader.frames if proc else 0,
        "bytes_received": proc.reader.bytes if proc else 0,
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
        stderr_tail=proc.stderr_tail if proc else "",
        ipc=ipc,
    )
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
