"""``quarry run`` end to end: real executor subprocess, real Chromium, real files, a real HTTP server."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from e2e_helpers import events_of, read_table, run_id_from

pytestmark = pytest.mark.browser


def test_success_persists_every_event_in_order(quarry, site_url, storage):
    res = quarry("ok.py", "--job-id", "job-7", job={"url": f"{site_url}/index.html"})
    assert res.code == 0, res.stderr
    run_id = run_id_from(res.stdout)
    assert "outcome=success" in res.stdout
    rows = events_of(storage, run_id)
    types = [r["event_type"] for r in rows]
    assert types[0] == "log" and types[-1] == "run_complete"
    assert types.count("item") == 12 and types.count("checkpoint") == 1
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    first_item = next(r for r in rows if r["event_type"] == "item")
    assert json.loads(first_item["payload"])["data"]["title"] == "Quarry Stone Shop"
    assert {r["source"] for r in rows} == {"ok"} and {r["category"] for r in rows} == {"default"}
    assert {r["policy"] for r in rows} == {"strict"} and {r["job_id"] for r in rows} == {"job-7"}
    run = read_table(storage, "runs", run_id=run_id)
    assert {r["state"] for r in run} == {"running", "succeeded"}
    final = max(run, key=lambda r: r["updated_at"])
    assert final["outcome"] == "success" and final["exit_code"] == 0 and final["event_count"] == len(rows)
    metrics = read_table(storage, "metrics", run_id=run_id)
    assert len(metrics) == 1
    m = metrics[0]
    assert m["events_received_total"] == m["events_persisted_total"] == len(rows)
    assert m["runs_completed_total"] == 1 and m["executor_launch_success_total"] == 1
    # strict: one commit per group of events that arrived together (group commit), each event in exactly one
    from quarry_lode import open_dataset

    event_commits = [
        m for m in open_dataset(str(storage)).snapshots()
        if m.metadata.get("run_id") == run_id and any(f.table == "events" for f in m.files)
    ]  # fmt: skip
    assert m["lode_write_success_total"] == len(event_commits)
    assert 1 <= len(event_commits) <= len(rows)
    assert sum(f.row_count for c in event_commits for f in c.files if f.table == "events") == len(rows)


def test_script_exception_is_script_error_with_persisted_run_error(quarry, storage):
    res = quarry("raises.py")
    assert res.code == 1, res.stderr
    rows = events_of(storage, run_id_from(res.stdout))
    assert [r["event_type"] for r in rows] == ["item", "run_error"]
    payload = json.loads(rows[-1]["payload"])
    assert payload["error_type"] == "script_error" and payload["message"] == "boom"
    assert "ValueError" in payload["stack"]
    assert "Message: boom" in res.stdout


def test_explicit_run_error(quarry, storage):
    res = quarry("explicit_error.py")
    assert res.code == 1
    assert "outcome=script_error" in res.stdout and "Message: captcha wall" in res.stdout


def test_script_killing_its_own_process_is_executor_crash(quarry, storage):
    res = quarry("suicide.py")
    assert res.code == 2, res.stdout + res.stderr
    assert "outcome=executor_crash" in res.stdout
    assert "executor killed by signal SIGKILL" in res.stdout
    rows = events_of(storage, run_id_from(res.stdout))
    assert [r["event_type"] for r in rows] == ["item"]  # committed before the crash


def test_stdout_prints_never_corrupt_the_stream(quarry, storage):
    res = quarry("prints.py")
    assert res.code == 0, res.stderr
    assert "Browser started successfully" in res.stderr
    assert "printed from run()" in res.stderr and "raw write to fd 1" in res.stderr
    assert "stdout guard: intercepted stray write" in res.stderr
    rows = events_of(storage, run_id_from(res.stdout))
    assert [r["event_type"] for r in rows] == ["item", "run_complete"]


@pytest.mark.parametrize("size", [0, 5, 9 * 1024 * 1024])
def test_artifact_round_trip(quarry, storage, size):
    from quarry_lode import open_dataset

    res = quarry("artifact.py", job={"size": size})
    assert res.code == 0, res.stderr
    run_id = run_id_from(res.stdout)
    rows = events_of(storage, run_id)
    ref = json.loads(next(r for r in rows if r["event_type"] == "item")["payload"])["data"]
    data = open_dataset(str(storage)).read_artifact(run_id, ref["artifact_id"])
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == ref["sha256"]
    assert data == random.Random(size).randbytes(size)
