"""The read-side responses (CONTRACT_CLI §9), computed from stored run and metrics records.

Pure functions over the newest run record per run (what the storage reader's ``runs()`` returns), so every number
comes from the data and the JSON key order is declared here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "PARTITION_KEYS",
    "STATES",
    "aggregate_metrics",
    "executor_stats",
    "filter_runs",
    "inspect_job",
    "inspect_run",
    "jobs_of",
    "latest_run",
    "lineage_tree",
    "list_jobs",
    "list_runs",
    "metrics_record",
    "stats_jobs",
    "stats_runs",
]

STATES = ("running", "succeeded", "failed", "canceled")
PARTITION_KEYS = ("source", "category", "day", "run_id", "event_type")


def _as_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return None


def _start_key(rec: Mapping[str, Any]) -> tuple[datetime, str]:
    return (_as_dt(rec.get("started_at")) or datetime.min.replace(tzinfo=UTC), str(rec.get("run_id")))


def filter_runs(
    records: Iterable[Mapping[str, Any]],
    *,
    source: str | None = None,
    category: str | None = None,
    state: str | None = None,
    job_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Mapping[str, Any]]:
    """Runs matching every given filter (a run's time is its ``started_at``), newest first."""
    out = []
    for rec in records:
        if source is not None and rec.get("source") != source:
            continue
        if category is not None and rec.get("category") != category:
            continue
        if state is not None and rec.get("state") != state:
            continue
        if job_id is not None and rec.get("job_id") != job_id:
            continue
        started = _as_dt(rec.get("started_at"))
        if since is not None and (started is None or started < since):
            continue
        if until is not None and (started is None or started >= until):
            continue
        out.append(rec)
    return sorted(out, key=_start_key, reverse=True)


def list_runs(records: Sequence[Mapping[str, Any]], limit: int = 0) -> list[dict[str, Any]]:
    """``list runs``: ``[{run_id, state, outcome, job_id, source, category, started_at, duration_ms}]``."""
    rows = [
        {
            "run_id": r.get("run_id"),
            "state": r.get("state"),
            "outcome": r.get("outcome"),
            "job_id": r.get("job_id"),
            "source": r.get("source"),
            "category": r.get("category"),
            "started_at": r.get("started_at"),
            "duration_ms": r.get("duration_ms"),
        }
        for r in records
    ]
    return rows[:limit] if limit > 0 else rows


def jobs_of(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """job id → its runs, oldest attempt first (runs without a job id are left out)."""
    jobs: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        jid = rec.get("job_id")
        if jid:
            jobs.setdefault(str(jid), []).append(rec)
    for runs in jobs.values():
        runs.sort(key=lambda r: (int(r.get("attempt") or 0), _start_key(r)))
    return jobs


def latest_run(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """A job's newest run: highest attempt, then latest start."""
    return max(runs, key=lambda r: (int(r.get("attempt") or 0), _start_key(r)))


def list_jobs(records: Iterable[Mapping[str, Any]], limit: int = 0) -> list[dict[str, Any]]:
    """``list jobs``: ``[{job_id, state, runs, latest_run_id}]``, the most recently active job first."""
    rows = []
    for jid, runs in jobs_of(records).items():
        last = latest_run(runs)
        rows.append(
            (
                max(_start_key(r) for r in runs),
                {"job_id": jid, "state": last.get("state"), "runs": len(runs), "latest_run_id": last.get("run_id")},
            )
        )
    rows.sort(key=lambda pair: pair[0], reverse=True)
    out = [row for _, row in rows]
    return out[:limit] if limit > 0 else out


def inspect_job(job_id: str, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``inspect job``: ``{job_id, state, latest_run_id, attempts, runs[…]}``."""
    last = latest_run(runs)
    return {
        "job_id": job_id,
        "state": last.get("state"),
        "latest_run_id": last.get("run_id"),
        "attempts": max(int(r.get("attempt") or 0) for r in runs),
        "runs": [
            {
                "run_id": r.get("run_id"),
                "attempt": r.get("attempt"),
                "parent_run_id": r.get("parent_run_id"),
                "state": r.get("state"),
                "outcome": r.get("outcome"),
                "started_at": r.get("started_at"),
            }
            for r in runs
        ],
    }


def _brief(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": rec.get("run_id"),
        "attempt": rec.get("attempt"),
        "depth": rec.get("depth"),
        "state": rec.get("state"),
        "outcome": rec.get("outcome"),
        "event_count": rec.get("event_count"),
        "duration_ms": rec.get("duration_ms"),
    }


def lineage_tree(root_id: str, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The lineage tree under ``root_id``: each node ``{run_id, relation, attempt, state, outcome, children[]}``.

    A node's children are its retries (``parent_run_id`` = the node, relation ``retry``) and the runs it spawned by
    fan-out (``spawned_by_run_id`` = the node, relation ``child``), ordered by start time.
    """
    by_id = {str(r.get("run_id")): r for r in records}
    kids: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for rec in by_id.values():
        if rec.get("parent_run_id"):
            kids.setdefault(str(rec["parent_run_id"]), []).append(("retry", rec))
        if rec.get("spawned_by_run_id"):
            kids.setdefault(str(rec["spawned_by_run_id"]), []).append(("child", rec))

    def node(run_id: str, relation: str, seen: frozenset[str]) -> dict[str, Any]:
        rec = by_id.get(run_id, {})
        entries = sorted(kids.get(run_id, []), key=lambda pair: _start_key(pair[1]))
        children = [node(str(r["run_id"]), rel, seen | {run_id}) for rel, r in entries if str(r["run_id"]) not in seen]
        return {
            "run_id": run_id,
            "relation": relation,
            "attempt": rec.get("attempt"),
            "state": rec.get("state", "unknown" if not rec else None),
            "outcome": rec.get("outcome"),
            "children": children,
        }

    return node(root_id, "root", frozenset())


def _root_of(rec: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]) -> str:
    """Follow retries and spawns upwards to the first run (the stored ``root_run_id`` names the fan-out root)."""
    current = rec
    seen: set[str] = set()
    while True:
        rid = str(current.get("run_id"))
        seen.add(rid)
        up = current.get("parent_run_id") or current.get("spawned_by_run_id")
        if not up or str(up) in seen or str(up) not in by_id:
            return rid
        current = by_id[str(up)]


def inspect_run(
    rec: Mapping[str, Any], records: Sequence[Mapping[str, Any]], artifact_items: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``inspect run``: the contract's keys in order, then ``exit_code``, ``error_type``, ``stop_reason``, ``executor``,
    ``storage_backend``, ``ipc``, ``retries[]`` and the ``lineage`` tree."""
    run_id = str(rec.get("run_id"))
    children = sorted((r for r in records if r.get("spawned_by_run_id") == run_id), key=_start_key)
    retries = sorted((r for r in records if r.get("parent_run_id") == run_id), key=_start_key)
    by_id = {str(r.get("run_id")): r for r in records}
    return {
        "run_id": run_id,
        "job_id": rec.get("job_id"),
        "state": rec.get("state"),
        "outcome": rec.get("outcome"),
        "message": rec.get("message"),
        "attempt": rec.get("attempt"),
        "parent_run_id": rec.get("parent_run_id"),
        "spawned_by_run_id": rec.get("spawned_by_run_id"),
        "depth": rec.get("depth"),
        "root_run_id": rec.get("root_run_id") or run_id,
        "children": [_brief(c) for c in children],
        "policy": rec.get("policy"),
        "source": rec.get("source"),
        "category": rec.get("category"),
        "day": rec.get("day"),
        "started_at": rec.get("started_at"),
        "ended_at": rec.get("ended_at"),
        "duration_ms": rec.get("duration_ms"),
        "event_count": rec.get("event_count"),
        "events": {
            "received": rec.get("events_received"),
            "persisted": rec.get("events_persisted"),
            "dropped": rec.get("events_dropped"),
            "dropped_by_type": dict(rec.get("dropped_by_type") or {}),
            "unflushed": rec.get("events_unflushed"),
        },
        "artifacts": {
            "total": rec.get("artifacts_total"),
            "committed": rec.get("artifacts_committed"),
            "orphaned": rec.get("artifacts_orphaned"),
            "chunks": rec.get("artifact_chunks"),
            "bytes": rec.get("artifact_bytes"),
            "orphaned_ids": list(rec.get("orphaned_artifact_ids") or []),
            "items": [dict(a) for a in artifact_items],
        },
        "sidecar_files": [dict(f) for f in rec.get("sidecar_files") or []],
        "proxy_used": rec.get("proxy_used"),
        "proxy_rotations": rec.get("proxy_rotations"),
        "exit_code": rec.get("exit_code"),
        "error_type": rec.get("error_type"),
        "stop_reason": rec.get("stop_reason"),
        "executor": rec.get("executor"),
        "storage_backend": rec.get("storage_backend"),
        "ipc": rec.get("ipc"),
        "retries": [_brief(r) for r in retries],
        "lineage": lineage_tree(_root_of(rec, by_id), records),
    }


def _counts(states: Iterable[Any]) -> dict[str, int]:
    counts = {"total": 0, **dict.fromkeys(STATES, 0)}
    for state in states:
        counts["total"] += 1
        if state in counts:
            counts[str(state)] += 1
    return counts


def stats_runs(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``stats runs``: ``{total, running, succeeded, failed, canceled, by_outcome{}}`` then event, artifact and
    sidecar totals of the same runs."""
    out: dict[str, Any] = _counts(r.get("state") for r in records)
    by_outcome: dict[str, int] = {}
    for r in records:
        if r.get("outcome"):
            by_outcome[str(r["outcome"])] = by_outcome.get(str(r["outcome"]), 0) + 1
    out["by_outcome"] = dict(sorted(by_outcome.items()))
    out["events_persisted"] = sum(int(r.get("events_persisted") or 0) for r in records)
    out["events_dropped"] = sum(int(r.get("events_dropped") or 0) for r in records)
    out["artifacts_committed"] = sum(int(r.get("artifacts_committed") or 0) for r in records)
    out["sidecar_files"] = sum(len(r.get("sidecar_files") or []) for r in records)
    return out


def stats_jobs(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """``stats jobs``: ``{total, running, succeeded, failed, canceled}`` by each job's newest run."""
    return _counts(latest_run(runs).get("state") for runs in jobs_of(records).values())


def metrics_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A metrics row without its partition keys (``stats metrics``)."""
    return {k: v for k, v in row.items() if k not in PARTITION_KEYS}


def aggregate_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``stats metrics --aggregate``: ``runs``, then every ``*_total`` counter summed, then the summed maps."""
    from quarry_core.runtime.metrics import COUNTERS

    out: dict[str, Any] = {"runs": len({r.get("run_id") for r in rows}), **dict.fromkeys(COUNTERS, 0)}
    maps: dict[str, dict[str, int]] = {}
    for row in rows:
        for key, value in row.items():
            if key.endswith("_total") and isinstance(value, int) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
            elif key in ("dropped_by_type", "dropped_by_reason", "flush_triggers") and isinstance(value, Mapping):
                target = maps.setdefault(key, {})
                for k, v in value.items():
                    target[str(k)] = target.get(str(k), 0) + int(v or 0)
    for key in ("dropped_by_type", "dropped_by_reason", "flush_triggers"):
        out[key] = dict(sorted(maps.get(key, {}).items()))
    return out


def executor_stats(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """executor name → ``{executor, runs, running, crashes, launch_failures, last_used_at}`` from run records
    (``crashes``: outcome ``executor_crash`` that was not a launch failure; ``launch_failures``: stop reason
    ``launch_failure``)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        name = str(rec.get("executor") or "")
        if not name:
            continue
        row = out.setdefault(
            name,
            {"executor": name, "runs": 0, "running": 0, "crashes": 0, "launch_failures": 0, "last_used_at": None},
        )
        row["runs"] += 1
        if rec.get("state") == "running":
            row["running"] += 1
        launch_failed = rec.get("stop_reason") == "launch_failure"
        if launch_failed:
            row["launch_failures"] += 1
        elif rec.get("outcome") == "executor_crash":
            row["crashes"] += 1
        started = _as_dt(rec.get("started_at"))
        last = _as_dt(row["last_used_at"])
        if started is not None and (last is None or started > last):
            row["last_used_at"] = rec.get("started_at")
    return dict(sorted(out.items()))
