"""The workflows and the activity against a real Temporal dev server, an in-process worker, real executors and
Chromium, the bundled site over HTTP, Lode read back: success, retries with lineage, non-retryable failures,
cancellation, crawl limits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from quarry_temporal.models import ActivityOptions, CrawlInput, CrawlResult, JobInput, JobResult
from quarry_temporal_tests.conftest import HERE_SCRIPTS, SCRIPTS, in_process_worker, latest_runs, read_events

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FAST = ActivityOptions(start_to_close_s=120, heartbeat_timeout_s=10, schedule_to_start_s=60)


def _job(script: Path, activity: ActivityOptions = FAST, **kw: Any) -> JobInput:
    return JobInput(script=str(script), source=script.stem, retry_initial_s=0.1, activity=activity, **kw)


async def _start(client: Any, queue: str, workflow: str, arg: Any, result_type: type) -> Any:
    return await client.start_workflow(workflow, arg, id=f"t-{uuid.uuid4()}", task_queue=queue, result_type=result_type)


def test_job_success_then_retry_with_lineage_then_non_retryable(temporal_server, site, tmp_path):
    import redis.asyncio as aioredis
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    storage = tmp_path / "data"
    channel = f"quarry-temporal-test:{uuid.uuid4().hex}"
    notified: list[dict[str, Any]] = []

    async def scenario() -> tuple[JobResult, Any, Any, Any]:
        redis = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
        pubsub = redis.pubsub()
        await pubsub.subscribe(channel)
        try:
            return await jobs()
        finally:
            while (msg := await pubsub.get_message(timeout=1.0)) is not None:
                if msg["type"] == "message":
                    notified.append(json.loads(msg["data"]))
            await pubsub.aclose()
            await redis.aclose()

    async def jobs() -> tuple[JobResult, Any, Any, Any]:
        adapter = {"adapter": "redis", "adapter_url": "redis://127.0.0.1:6379/0", "adapter_channel": channel}
        async with in_process_worker(temporal_server, storage, max_flush_retries=1, **adapter) as (client, queue):
            ok_h = await _start(
                client,
                queue,
                "QuarryJobWorkflow",
                _job(SCRIPTS / "ok.py", job={"url": f"{site}/index.html"}),
                JobResult,
            )
            fail_h = await _start(
                client, queue, "QuarryJobWorkflow", _job(HERE_SCRIPTS / "always_fails.py", max_attempts=2), JobResult
            )
            fault = _job(SCRIPTS / "sink_fault.py", job={"storage": str(storage), "repair": False, "items": 1})
            policy_h = await _start(client, queue, "QuarryJobWorkflow", fault, JobResult)
            missing = _job(HERE_SCRIPTS / "not_on_this_worker.py")
            missing_h = await _start(client, queue, "QuarryJobWorkflow", missing, JobResult)
            ok = await ok_h.result()
            errors = []
            for handle in (fail_h, policy_h, missing_h):
                with pytest.raises(WorkflowFailureError) as info:
                    await handle.result()
                errors.append(info.value.cause)
            return ok, errors[0], errors[1], errors[2]

    ok, failed, policy, missing = asyncio.run(scenario())
    runs = latest_runs(storage)

    # success: one attempt, a small result pointing at the run's events partition
    assert (ok.outcome, ok.exit_code, len(ok.attempts)) == ("success", 0, 1)
    assert ok.result is not None and ok.result.event_count > 0 and ok.result.events_persisted > 0
    assert ok.result.storage_path.startswith(f"file://{storage}/datasets/quarry/events/source=ok/category=default/")
    assert ok.result.storage_path.endswith(f"/run_id={ok.run_id}")
    assert runs[ok.run_id]["state"] == "succeeded" and runs[ok.run_id]["attempt"] == 1

    # script_error: retried as a new run with attempt + 1 and parent_run_id, then the workflow fails
    from quarry_temporal.models import job_result_from

    assert isinstance(failed, ApplicationError) and failed.type == "script_error"
    job = job_result_from(failed.details[0])
    assert job is not None and [a.attempt for a in job.attempts] == [1, 2]
    first, second = job.attempts
    assert first.parent_run_id is None and second.parent_run_id == first.run_id
    for a in job.attempts:
        rec = runs[a.run_id]
        assert (rec["state"], rec["outcome"], rec["attempt"], rec["parent_run_id"]) == (
            "failed",
            "script_error",
            a.attempt,
            a.parent_run_id,
        )
        rows = [r for r in read_events(storage, run_id=a.run_id) if r["event_type"] == "item"]
        assert len(rows) == 1  # each attempt's own item, recorded under its own run
    assert job.exit_code == 1

    # policy_failure: not retried
    assert isinstance(policy, ApplicationError) and policy.type == "policy_failure"
    pjob = job_result_from(policy.details[0])
    assert pjob is not None and len(pjob.attempts) == 1 and pjob.exit_code == 3
    assert runs[pjob.run_id]["outcome"] == "policy_failure"

    # a script the worker cannot find: config_error, not retried, exit 4, nothing run
    assert isinstance(missing, ApplicationError) and missing.type == "config_error"
    mjob = job_result_from(missing.details[0])
    assert mjob is not None and len(mjob.attempts) == 1 and mjob.exit_code == 4
    assert "script not found" in mjob.attempts[0].message and mjob.run_id not in runs

    # every run was notified once through the worker's adapter, by the quarry.notify activity
    expected = {ok.run_id: "success", pjob.run_id: "policy_failure"}
    expected.update({a.run_id: "script_error" for a in job.attempts})
    assert {n["run_id"]: n["outcome"] for n in notified} == expected and len(notified) == 4
    assert all(n["event_type"] == "run_completed" for n in notified)


def test_cancel_stops_the_executor_flushes_and_records_canceled(temporal_server, tmp_path):
    from temporalio.client import WorkflowFailureError

    storage = tmp_path / "data"

    async def scenario() -> tuple[str, float]:
        async with in_process_worker(temporal_server, storage, heartbeat_interval=0.2) as (client, queue):
            handle = await _start(
                client,
                queue,
                "QuarryJobWorkflow",
                _job(SCRIPTS / "hang.py", activity=ActivityOptions(start_to_close_s=120, heartbeat_timeout_s=3)),
                JobResult,
            )
            deadline = time.monotonic() + 60
            run_id = ""
            while time.monotonic() < deadline and not run_id:  # wait until the run has persisted its item
                await asyncio.sleep(0.3)
                if storage.exists():
                    rows = [r for r in read_events(storage) if r["event_type"] == "item"]
                    run_id = rows[0]["run_id"] if rows else ""
            assert run_id, "the run never persisted its item"
            beat = await _heartbeat_details(client, handle, deadline)
            assert beat["run_id"] == run_id and beat["events_received"] >= 1 and beat["last_seq"] >= 1
            t0 = time.monotonic()
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            return run_id, time.monotonic() - t0

    run_id, took = asyncio.run(scenario())
    rec = latest_runs(storage)[run_id]
    assert (rec["state"], rec["outcome"], rec["exit_code"]) == ("canceled", "canceled", 143)
    assert rec["message"] == "run canceled by SIGTERM"
    assert took < 20


async def _heartbeat_details(client: Any, handle: Any, deadline: float) -> dict[str, Any]:
    """The first stored heartbeat of the workflow's running activity that reports an event received."""
    while time.monotonic() < deadline:
        desc = await handle.describe()
        for pending in desc.raw_description.pending_activities:
            if pending.heartbeat_details.payloads:
                (details,) = await client.data_converter.decode(pending.heartbeat_details.payloads)
                if details["events_received"] >= 1:
                    return dict(details)
        await asyncio.sleep(0.2)
    raise AssertionError("no heartbeat recorded")


def test_crawl_applies_max_runs_and_dedup_like_local_fan_out(temporal_server, site, tmp_path):
    storage = tmp_path / "data"
    listing = HERE_SCRIPTS / "slow_listing.py"

    async def scenario() -> CrawlResult:
        async with in_process_worker(temporal_server, storage) as (client, queue):
            root = _job(listing, job={"url": f"{site}/index.html"}, job_id="crawl-mr")
            # children as child QuarryJobWorkflows (the path of crawls above 500 max_runs), and a history limit
            # low enough that the crawl continues as new, carrying its dedup set, queue and counters
            crawl = CrawlInput(root, depth=2, max_runs=5, parallel=3, child_workflows_above=0, continue_as_new_after=12)
            handle = await _start(client, queue, "QuarryCrawlWorkflow", crawl, CrawlResult)
            result: CrawlResult = await handle.result()
            progress = await client.get_workflow_handle(handle.id).query("progress")
            assert progress["runs_total"] == 5 and progress["queued"] == 0
            assert progress["continued"] == result.continued >= 1
            started = 0
            run_handle = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
            while True:  # follow the chain of runs
                history = await run_handle.fetch_history()
                attr = "start_child_workflow_execution_initiated_event_attributes"
                started += sum(1 for e in history.events if e.HasField(attr))
                last = history.events[-1]
                if not last.HasField("workflow_execution_continued_as_new_event_attributes"):
                    break
                new_run = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                run_handle = client.get_workflow_handle(handle.id, run_id=new_run)
            assert started == 5
            return result

    res = asyncio.run(scenario())
    fo = res.fan_out
    assert res.exit_code == 0 and res.root.outcome == "success"
    # root: 12 enqueues, 5 scheduled, 7 over max_runs; 5 children each enqueue the listing back (deduped)
    assert (fo["runs_total"], fo["runs_succeeded"], fo["runs_failed"]) == (5, 5, 0)
    assert (fo["enqueue_received"], fo["enqueue_deduped"], fo["enqueue_skipped"]) == (17, 5, 7)
    assert fo["enqueue_skipped_by_reason"]["max_runs_reached"] == 7
    runs = latest_runs(storage)
    root_id = res.root.run_id
    children = [r for r in runs.values() if r["run_id"] != root_id]
    assert len(children) == 5 and len(runs) == 6
    for child in children:
        assert child["state"] == "succeeded" and child["category"] == "detail" and child["source"] == "slow_listing"
        assert (child["job_id"], child["spawned_by_run_id"], child["depth"], child["root_run_id"]) == (
            "crawl-mr",
            root_id,
            1,
            root_id,
        )
    items = [r for r in read_events(storage) if r["event_type"] == "item"]
    assert len(items) == 5 and {r["run_id"] for r in items} == {c["run_id"] for c in children}
    assert {c["depth"] for c in res.fan_out["children"]} == {1}
