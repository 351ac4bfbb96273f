"""Run and metrics records (CONTRACT_RUN run record, CONTRACT_METRICS). Plain dicts that Lode stores.

Field names are the contract's; ``source``, ``category``, ``day`` and ``run_id`` are partition values, so
Lode takes them from the path and does not store them as columns.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from quarry_core.outcomes import Outcome, state_for
from quarry_core.protocol.constants import CONTRACT_VERSION
from quarry_core.protocol.values import utc_now_ts
from quarry_core.runtime.metrics import COUNTERS

if TYPE_CHECKING:
    from quarry_core.runtime.run import RunReport, _Run

__all__ = ["JOB_RECORD_LIMIT", "metrics_record", "run_record", "stop_reason"]

JOB_RECORD_LIMIT = 1024 * 1024


def _quarry_version() -> str:
    from quarry_core import __version__

    return __version__


def run_record(run: _Run, *, outcome: Outcome | None, report: RunReport | None = None) -> dict[str, Any]:
    """The run record: ``state: running`` at start (``report`` None), the final one at the end."""
    import hashlib

    s = run.s
    job_text = run.job_text
    rec: dict[str, Any] = {
        "record_kind": "run",
        "run_id": s.run_id,
        "job_id": s.job_id,
        "attempt": s.attempt,
        "parent_run_id": s.parent_run_id,
        "spawned_by_run_id": s.spawned_by_run_id,
        "depth": s.depth,
        "root_run_id": s.root_run_id or s.run_id,
        "state": state_for(outcome),
        "outcome": outcome.value if outcome is not None else None,
        "message": None,
        "error_type": None,
        "exit_code": None,
        "script": s.script,
        "script_sha256": run.script_sha256,
        "job": job_text if len(job_text.encode()) <= JOB_RECORD_LIMIT else None,
        "job_sha256": hashlib.sha256(job_text.encode()).hexdigest(),
        "policy": s.policy.name,
        "policy_config": json.dumps(s.policy.to_json(), sort_keys=True, separators=(",", ":")),
        "executor": s.executor,
        "executor_version": run.executor_version,
        "storage_backend": run.storage_protocol,
        "dataset": s.storage.dataset,
        "source": s.source,
        "category": s.category,
        "day": run.day,
        "started_at": report.started_at if report else _ts(run),
        "ended_at": None,
        "duration_ms": None,
        "updated_at": utc_now_ts(),
        "event_count": 0,
        "events_received": 0,
        "events_persisted": 0,
        "events_dropped": 0,
        "dropped_by_type": {},
        "events_unflushed": 0,
        "event_sink_errors": dict(run.sink.errors) if run.sink is not None else {},
        "artifacts_total": 0,
        "artifacts_committed": 0,
        "artifacts_orphaned": 0,
        "artifact_chunks": 0,
        "artifact_bytes": 0,
        "orphaned_artifact_ids": [],
        "sidecar_files": [],
        "proxy_pool": run.proxy.pool if run.proxy is not None else None,
        "proxy_used": run.proxy.used.to_dict() if run.proxy is not None else None,
        "proxy_rotations": 0,
        "proxy_endpoints": [e.to_dict() for e in run.proxy.endpoints] if run.proxy is not None else [],
        "ipc": {"frames_received": 0, "bytes_received": 0, "decode_errors": 0, "last_error": None},
        "stderr_tail": "",
        "stop_reason": None,
        "quarry_version": _quarry_version(),
        "contract_version": CONTRACT_VERSION,
    }
    if report is not None:
        st = report.policy_stats
        a = report.artifacts
        rec.update(
            message=report.message,
            error_type=report.error_type,
            exit_code=report.exit_code,
            ended_at=report.ended_at,
            duration_ms=report.duration_ms,
            event_count=report.event_count,
            events_received=st.events_received,
            events_persisted=st.events_persisted,
            events_dropped=st.events_dropped,
            dropped_by_type=dict(st.dropped_by_type),
            events_unflushed=st.events_unflushed,
            artifacts_total=a.total,
            artifacts_committed=a.committed,
            artifacts_orphaned=a.orphaned,
            artifact_chunks=a.chunks,
            artifact_bytes=a.bytes,
            orphaned_artifact_ids=list(a.orphaned_ids),
            sidecar_files=[
                {"filename": f.filename, "content_type": f.content_type, "size": f.size, "key": f.key}
                for f in report.sidecar_files
            ],
            ipc=dict(report.ipc),
            stderr_tail=report.stderr_tail,
            stop_reason=stop_reason(run),
            proxy_pool=report.proxy_pool,
            proxy_used=dict(report.proxy_used) if report.proxy_used is not None else None,
            proxy_rotations=report.proxy_rotations,
            proxy_endpoints=[dict(e) for e in report.proxy_endpoints],
        )
        if report.fan_out is not None:
            fo = report.fan_out
            rec.update(
                children_total=fo["runs_total"],
                children_succeeded=fo["runs_succeeded"],
                children_failed=fo["runs_failed"],
                enqueue_received=fo["enqueue_received"],
                enqueue_deduped=fo["enqueue_deduped"],
                enqueue_skipped=fo["enqueue_skipped"],
            )
    return rec


def stop_reason(run: _Run) -> str:
    """Why the run stopped: ``launch_failure``, ``timeout``, ``signal:<NAME>``, ``ingestion_error`` (a fatal stream,
    version or policy error stopped the executor), ``terminal`` (the script's terminal event arrived) or
    ``executor_exit`` (the executor ended without one)."""
    if run.launch_error is not None:
        return "launch_failure"
    if run.timed_out:
        return "timeout"
    if run.canceled_by is not None:
        return f"signal:{run.canceled_by}"
    result = run.ingestor.result if run.ingestor is not None else None
    if result is not None and result.fatal:
        return "ingestion_error"
    if result is not None and result.terminal is not None:
        return "terminal"
    return "executor_exit"


def _ts(run: _Run) -> str:
    from quarry_core.protocol.values import format_ts

    return format_ts(run.started)


def metrics_record(run: _Run, report: RunReport) -> dict[str, Any]:
    """The run's metrics record: every counter, the drop maps, streaming flush triggers, and dimensions."""
    s = run.s
    st = report.policy_stats
    rec: dict[str, Any] = {"record_kind": "metrics", "ts": report.ended_at, "run_id": s.run_id}
    for name in COUNTERS:
        rec[name] = int(report.metrics.get(name, 0))
    rec.update(
        dropped_by_type=dict(st.dropped_by_type),
        dropped_by_reason=dict(st.dropped_by_reason),
        flush_triggers=dict(st.flush_triggers) if st.flush_triggers is not None else None,
        buffer_high_water_events=st.buffer_high_water_events,
        buffer_high_water_bytes=st.buffer_high_water_bytes,
        policy=s.policy.name,
        executor=s.executor,
        storage_backend=report.storage_backend,
        job_id=s.job_id,
    )
    return rec
