"""The ``quarry run`` stdout summary and the JSON report (CONTRACT_CLI summary, CONTRACT_RUN report)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from loguru import logger

from quarry_core.interfaces import PolicyStats
from quarry_core.protocol.constants import CONTRACT_VERSION
from quarry_core.runtime.metrics import COUNTERS
from quarry_core.runtime.run import RunReport

__all__ = ["print_summary", "report_dict", "summary_text", "write_report"]


def _policy_line(r: RunReport) -> str:
    p = r.settings.policy
    st = r.policy_stats
    parts = [f"policy={p.name}"]
    if p.name == "buffered":
        parts += [f"flush_mode={p.flush_mode}", f"drops={st.events_dropped}", f"unflushed={st.events_unflushed}"]
    elif p.name == "streaming":
        parts += [f"flush_count={p.flush_count}", f"flush_interval={p.flush_interval:g}s", f"flushes={st.flush_count}"]
    return ", ".join(parts)


def _flushes_line(st: PolicyStats) -> str:
    line = f"Flushes: {st.flush_count}"
    if st.flush_triggers is not None:
        line += " (" + ", ".join(f"{k}={v}" for k, v in st.flush_triggers.items()) + ")"
    return line


def summary_text(r: RunReport) -> str:
    s = r.settings
    st = r.policy_stats
    lines = [
        f"run_id={r.run_id}, attempt={s.attempt}, outcome={r.outcome.value}, duration={r.duration_ms}ms",
        _policy_line(r),
        "=== Run Result ===",
        f"Run ID: {r.run_id}",
    ]
    if s.job_id:
        lines.append(f"Job ID: {s.job_id}")
    if s.parent_run_id:
        lines.append(f"Parent Run: {s.parent_run_id}")
    if s.spawned_by_run_id:
        lines.append(f"Spawned By: {s.spawned_by_run_id}")
    if s.depth:
        lines.append(f"Depth: {s.depth}")
    lines += [
        f"Attempt: {s.attempt}",
        f"Outcome: {r.outcome.value}",
        f"Message: {r.message}",
        f"Duration: {r.duration_ms}ms",
        f"Events: {r.event_count}",
    ]
    lines += _proxy_lines(r)
    lines += [
        "=== Policy Stats ===",
        f"Events Received: {st.events_received}",
        f"Events Persisted: {st.events_persisted}",
    ]
    dropped = f"Events Dropped: {st.events_dropped}"
    if st.dropped_by_type:
        dropped += " (" + ", ".join(f"{k}={v}" for k, v in sorted(st.dropped_by_type.items())) + ")"
    lines += [
        dropped,
        f"Events Unflushed: {st.events_unflushed}",
        f"Chunks: {st.chunks_received} received, {st.chunks_persisted} persisted",
        _flushes_line(st),
        f"Flush Failures: {st.flush_failures} ({st.write_retries} retries)",
        f"Buffer High Water: {st.buffer_high_water_events} events, {st.buffer_high_water_bytes} bytes",
    ]
    a = r.artifacts
    if a.total:
        lines += [
            "=== Artifacts ===",
            f"Total: {a.total}",
            f"Committed: {a.committed}",
            f"Orphaned: {a.orphaned}",
            f"Chunks: {a.chunks}",
            f"Bytes: {a.bytes}",
        ]
        if a.orphaned_ids:
            lines += ["=== Orphan Artifacts ===", *a.orphaned_ids]
    if r.sidecar_files:
        lines += [
            "=== Sidecar Files ===",
            f"Files: {len(r.sidecar_files)}",
            f"Bytes: {sum(f.size for f in r.sidecar_files)}",
        ]
    lines.append("=== Metrics ===")
    for name in COUNTERS:
        lines.append(f"{name}: {r.metrics.get(name, 0)}")
    for typ, n in sorted(st.dropped_by_type.items()):
        lines.append(f"events_dropped{{type={typ}}}: {n}")
    for reason, n in sorted(st.dropped_by_reason.items()):
        lines.append(f"events_dropped{{reason={reason}}}: {n}")
    for trigger, n in (st.flush_triggers or {}).items():
        lines.append(f"policy_flushes{{trigger={trigger}}}: {n}")
    lines.append(f"dimensions: policy={s.policy.name}, executor={s.executor}, storage_backend={r.storage_backend}")
    lines += _fan_out_lines(r)
    return "\n".join(lines) + "\n"


def _fan_out_lines(r: RunReport) -> list[str]:
    """``=== Fan-Out Summary ===`` for a fan-out root: child totals, enqueue totals, one line per child."""
    fo = r.fan_out
    if fo is None:
        return []
    lines = [
        "=== Fan-Out Summary ===",
        f"Child Runs: {fo['runs_total']} total, {fo['runs_succeeded']} succeeded, {fo['runs_failed']} failed",
        f"Enqueue Events: {fo['enqueue_received']} received, {fo['enqueue_deduped']} deduped, "
        f"{fo['enqueue_skipped']} skipped, {fo['enqueue_abandoned']} abandoned",
    ]
    reasons = {k: v for k, v in fo.get("enqueue_skipped_by_reason", {}).items() if v}
    if reasons:
        lines.append("Skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    for child in fo["children"]:
        lines.append(
            f"{child['run_id']}: outcome={child['outcome']}, events={child['event_count']}, "
            f"duration={child['duration_ms']}ms"
        )
    return lines


def _proxy_lines(r: RunReport) -> list[str]:
    """``=== Proxy ===``: the redacted endpoint in use at the end and the rotations (no section without one)."""
    used = r.proxy_used
    if not used:
        return []
    lines = [
        "=== Proxy ===",
        f"Protocol: {used.get('protocol')}",
        f"Host: {used.get('host')}",
        f"Port: {used.get('port')}",
    ]
    if used.get("username"):
        lines.append(f"Username: {used['username']}")
    lines.append(f"Rotations: {r.proxy_rotations}")
    return lines


def print_summary(r: RunReport) -> None:
    sys.stdout.write(summary_text(r))
    sys.stdout.flush()


def report_dict(r: RunReport, exit_code: int) -> dict[str, Any]:
    """The report of the run contract; optional keys are omitted, never null."""
    from quarry_core import __version__

    s = r.settings
    st = r.policy_stats
    d: dict[str, Any] = {"run_id": r.run_id}
    if s.job_id:
        d["job_id"] = s.job_id
    if s.parent_run_id:
        d["parent_run_id"] = s.parent_run_id
    if s.spawned_by_run_id:
        d["spawned_by_run_id"] = s.spawned_by_run_id
    d.update(depth=s.depth, attempt=s.attempt, outcome=r.outcome.value, message=r.message)
    if r.error_type:
        d["error_type"] = r.error_type
    d.update(
        exit_code=exit_code,
        started_at=r.started_at,
        ended_at=r.ended_at,
        duration_ms=r.duration_ms,
        event_count=r.event_count,
    )
    policy: dict[str, Any] = {
        "name": s.policy.name,
        "events_received": st.events_received,
        "events_persisted": st.events_persisted,
        "events_dropped": st.events_dropped,
        "dropped_by_type": dict(st.dropped_by_type),
        "dropped_by_reason": dict(st.dropped_by_reason),
        "events_unflushed": st.events_unflushed,
        "chunks_received": st.chunks_received,
        "chunks_persisted": st.chunks_persisted,
        "flush_count": st.flush_count,
        "flush_failures": st.flush_failures,
        "write_retries": st.write_retries,
        "buffer_high_water_events": st.buffer_high_water_events,
        "buffer_high_water_bytes": st.buffer_high_water_bytes,
    }
    if st.flush_triggers is not None:
        policy["flush_triggers"] = dict(st.flush_triggers)
    d["policy"] = policy
    a = r.artifacts
    d["artifacts"] = {
        "total": a.total,
        "committed": a.committed,
        "orphaned": a.orphaned,
        "chunks": a.chunks,
        "bytes": a.bytes,
        "orphaned_ids": list(a.orphaned_ids),
    }
    d["sidecar_files"] = [
        {"filename": f.filename, "content_type": f.content_type, "size": f.size, "key": f.key} for f in r.sidecar_files
    ]
    d["metrics"] = {name: r.metrics.get(name, 0) for name in COUNTERS}
    if r.terminal_summary is not None:
        d["terminal_summary"] = dict(r.terminal_summary)
    if r.proxy_used:
        d["proxy_used"] = dict(r.proxy_used)
    d["proxy_rotations"] = r.proxy_rotations
    if r.stderr_tail:
        d["stderr"] = r.stderr_tail
    if r.fan_out is not None:
        d["fan_out"] = dict(r.fan_out)
    d["quarry_version"] = __version__
    d["contract_version"] = CONTRACT_VERSION
    return d


def write_report(r: RunReport, path: str, exit_code: int) -> None:
    text = json.dumps(report_dict(r, exit_code), indent=2, ensure_ascii=False) + "\n"
    try:
        if path == "-":
            sys.stderr.write(text)
            sys.stderr.flush()
            return
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("Warning: could not write report {}: {}", path, exc)
