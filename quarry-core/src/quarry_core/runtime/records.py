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

__all__ = ["JOB_RECORD_LIMIT", "metrics_record", "run_record"]

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
        "event_sink_errors": {},
        "artifacts_total": 0,
        "artifacts_committed": 0,
        "artifacts_orphaned": 0,
        "artifact_chunks": 0,
        "artifact_bytes": 0,
        "orphaned_artifact_ids": [],
        "sidecar_files": [],
        "proxy_pool": None,
        "proxy_used": None,
        "proxy_rotations": 0,
        "ipc": {"frames_received": 0, "bytes_received": 0, "decode_errors": 0, "last_error": None},
        "stderr_tail": "",
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
        )
    return rec


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
        policy=s.policy.name,
        executor=s.executor,
        storage_backend=report.storage_backend,
        job_id=s.job_id,
    )
    return rec
