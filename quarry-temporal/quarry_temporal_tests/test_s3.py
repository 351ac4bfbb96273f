"""A worker with shared S3 storage (a real moto S3 server on 127.0.0.1): the run lands in the bucket, the result's
``storage_path`` names it, and the reader opens it with the worker's storage configuration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from quarry_core.interfaces import StorageConfig
from quarry_temporal.models import ActivityOptions, JobInput, JobResult
from quarry_temporal_tests.conftest import SCRIPTS, in_process_worker

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BUCKET = "quarry-temporal"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def test_worker_writes_runs_to_shared_s3_storage(temporal_server, site, s3_endpoint) -> None:
    from quarry_lode.reader import open_configured

    path = f"s3://{BUCKET}/crawls"
    storage = {"storage_path": path, "storage_endpoint": s3_endpoint, "storage_region": "us-east-1"}
    job = JobInput(
        script=str(SCRIPTS / "ok.py"),
        source="ok",
        job={"url": f"{site}/index.html"},
        activity=ActivityOptions(start_to_close_s=120, heartbeat_timeout_s=10, schedule_to_start_s=60),
    )

    async def scenario() -> JobResult:
        async with in_process_worker(temporal_server, path, **storage) as (client, queue):
            handle = await client.start_workflow(
                "QuarryJobWorkflow", job, id=f"s3-{uuid.uuid4()}", task_queue=queue, result_type=JobResult
            )
            result: JobResult = await handle.result()
            return result

    res = asyncio.run(scenario())
    assert res.outcome == "success" and res.result is not None
    assert res.result.storage_path == (
        f"{path}/datasets/quarry/events/source=ok/category=default/day={_day(res)}/run_id={res.run_id}"
    )
    ds = open_configured(StorageConfig(path=path, endpoint=s3_endpoint, region="us-east-1"))
    runs = ds.read("runs", run_id=res.run_id).to_pylist()
    assert {r["state"] for r in runs} == {"running", "succeeded"}
    items = [r for r in ds.read("events", run_id=res.run_id).to_pylist() if r["event_type"] == "item"]
    assert len(items) == 12  # one per product link of the bundled site's listing


def _day(res: JobResult) -> str:
    assert res.result is not None
    return res.result.storage_path.split("day=", 1)[1].split("/", 1)[0]
