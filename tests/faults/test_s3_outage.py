"""The S3 endpoint goes away in the middle of a run: the run ends as ``policy_failure`` (exit 3) naming the
operation and the path, promptly, and every event committed before the outage is readable once S3 is back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from e2e_helpers import ROOT, SCRIPTS, run_id_from

pytestmark = pytest.mark.browser

BUCKET = "quarry-outage"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)


def _server(port: int) -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


def _committed_events(endpoint: str) -> list[dict[str, Any]]:
    import pyarrow.dataset as pads
    from pyarrow import fs as pafs

    s3 = pafs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", access_key="testing", secret_key="testing", region="us-east-1"
    )
    return (
        pads.dataset(f"{BUCKET}/data/datasets/quarry/events", filesystem=s3, format="parquet", partitioning="hive")
        .to_table()
        .to_pylist()
    )


def _committed_or_none(endpoint: str) -> list[dict[str, Any]]:
    try:
        return _committed_events(endpoint)
    except (OSError, ValueError):  # nothing written yet (no such prefix), or a file listed mid-write
        return []


def test_s3_going_away_mid_run_is_a_prompt_policy_failure(credentials: None) -> None:
    import boto3

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = _server(port)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", str(SCRIPTS / "slow_crawl.py")]
    cmd += ["--storage-path", f"s3://{BUCKET}/data", "--storage-endpoint", endpoint, "--storage-s3-path-style"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        # the script commits an item every ~20 ms: wait until 20 items are readable (however slow the machine)
        deadline = time.monotonic() + 90
        while len([r for r in _committed_or_none(endpoint) if r["event_type"] == "item"]) < 20:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "20 items were not committed within 90 s"
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        server.stop()
        stopped = time.monotonic()
        out, err = proc.communicate(timeout=180)
        elapsed = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, out + err
    assert "outcome=policy_failure" in out
    assert f"{BUCKET}/data/datasets/quarry" in out, "the message names the path"
    assert elapsed < 120, f"the outage took {elapsed:.0f}s to surface"
    server = _server(port)  # moto keeps its state in the process: the bucket is back with what was committed
    try:
        rows = sorted(_committed_events(endpoint), key=lambda r: r["seq"])
        items = [r for r in rows if r["event_type"] == "item"]
        assert len(items) >= 20, "what was committed before the outage is readable"
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
        run_id = run_id_from(out)
        assert {r["run_id"] for r in rows} == {run_id}
    finally:
        server.stop()
