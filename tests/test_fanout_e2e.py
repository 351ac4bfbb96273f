"""Fan-out end to end (CONTRACT_RUN §4): ``quarry run --depth`` as a subprocess, real warm and cold executors,
real Chromium, the bundled site over HTTP, Lode files read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import ROOT, SCRIPTS, read_table

pytestmark = pytest.mark.browser

LISTING = ROOT / "examples" / "crawl" / "listing.py"
SKUS = [f"QS-{i:03d}" for i in range(1, 13)]


def _latest_runs(storage: Path) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for rec in read_table(storage, "runs"):
        have = latest.get(rec["run_id"])
        if have is None or rec["updated_at"] > have["updated_at"]:
            latest[rec["run_id"]] = rec
    return latest


def _items(storage: Path) -> list[dict[str, Any]]:
    return [r for r in read_table(storage, "events") if r["event_type"] == "item"]


def test_depth_two_crawl_finds_every_item_once_with_lineage(quarry, site_url, storage, tmp_path):
    report_path = tmp_path / "report.json"
    res = quarry(
        LISTING,
        "--depth", "2", "--max-runs", "50", "--parallel", "3",
        "--job-id", "crawl-1", "--report", str(report_path),
        job={"url": f"{site_url}/index.html"},
    )  # fmt: skip
    assert res.code == 0, res.stderr
    report = json.loads(report_path.read_text())
    root_id = report["run_id"]
    fo = report["fan_out"]
    # 12 detail enqueues from the root, 12 listing enqueues back from the details (deduped against the root)
    assert (fo["runs_total"], fo["runs_succeeded"], fo["runs_failed"]) == (12, 12, 0)
    assert (fo["enqueue_received"], fo["enqueue_deduped"], fo["enqueue_skipped"], fo["enqueue_abandoned"]) == (
        24,
        12,
        0,
        0,
    )
    assert "Child Runs: 12 total, 12 succeeded, 0 failed" in res.stdout
    assert "Enqueue Events: 24 received, 12 deduped, 0 skipped, 0 abandoned" in res.stdout

    items = _items(storage)
    skus = sorted(json.loads(r["payload"])["data"]["sku"] for r in items)
    assert skus == SKUS  # every product exactly once
    child_ids = {c["run_id"] for c in fo["children"]}
    assert len(child_ids) == 12 and {r["run_id"] for r in items} == child_ids
    for row in items:  # lineage on every persisted event
        assert (row["job_id"], row["spawned_by_run_id"], row["depth"]) == ("crawl-1", root_id, 1)
        assert row["category"] == "detail" and row["source"] == "listing"

    runs = _latest_runs(storage)
    assert set(runs) == child_ids | {root_id}
    root = runs[root_id]
    assert root["depth"] == 0 and root["root_run_id"] == root_id and root["spawned_by_run_id"] is None
    assert (root["children_total"], root["children_succeeded"], root["children_failed"]) == (12, 12, 0)
    assert (root["enqueue_received"], root["enqueue_deduped"], root["enqueue_skipped"]) == (24, 12, 0)
    for run_id in child_ids:
        child = runs[run_id]
        assert child["state"] == "succeeded" and child["attempt"] == 1 and child["parent_run_id"] is None
        assert (child["job_id"], child["spawned_by_run_id"], child["depth"]) == ("crawl-1", root_id, 1)
        assert child["root_run_id"] == root_id and child["category"] == "detail"
        assert child["script"].endswith("examples/crawl/detail.py")
        assert json.loads(child["job"])["url"].startswith(site_url)
    # warm executors: 13 runs on at most parallel + 1 processes
    launches = sum(m["executor_launch_success_total"] for m in read_table(storage, "metrics"))
    assert 1 <= launches <= 4


def test_depth_one_cold_caps_and_skips_with_reasons(quarry, site_url, storage, tmp_path):
    report_path = tmp_path / "report.json"
    res = quarry(
        LISTING,
        "--depth", "1", "--max-runs", "4", "--parallel", "4", "--no-warm-executors",
        "--report", str(report_path),
        job={"url": f"{site_url}/index.html"},
    )  # fmt: skip
    assert res.code == 0, res.stderr
    fo = json.loads(report_path.read_text())["fan_out"]
    assert (fo["runs_total"], fo["runs_succeeded"]) == (4, 4)
    # 12 from the root (4 scheduled, 8 over the cap) + 4 from the details (too deep)
    assert fo["enqueue_received"] == 16 and fo["enqueue_deduped"] == 0
    assert fo["enqueue_skipped_by_reason"]["max_runs_reached"] == 8
    assert fo["enqueue_skipped_by_reason"]["depth_exceeded"] == 4
    assert fo["enqueue_skipped"] == 12
    assert "Skipped: depth_exceeded=4, max_runs_reached=8" in res.stdout
    # not a terminal: plain progress lines on stderr, the last one when the crawl ends
    final = "fan-out: 4 done (0 failed), 0 running, 0 queued"
    assert any(line.startswith(final) for line in res.stderr.splitlines()), res.stderr
    assert len(_items(storage)) == 4
    metrics = read_table(storage, "metrics")  # cold: one launch per run
    assert len(metrics) == 5 and all(m["executor_launch_success_total"] == 1 for m in metrics)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--depth", "1"], "invalid fan-out config: --max-runs is required when --depth > 0"),
        (["--depth", "-1"], "invalid fan-out config: --depth must be >= 0"),
        (["--depth", "1", "--max-runs", "5", "--parallel", "0"], "invalid fan-out config: --parallel must be >= 1"),
        (["--depth", "1", "--max-runs", "-2"], "invalid fan-out config: --max-runs must be >= 0"),
        (
            ["--depth", "1", "--max-runs", "5", "--executor-recycle-after", "0"],
            "invalid fan-out config: --executor-recycle-after must be >= 1",
        ),
        (
            ["--depth", "1", "--max-runs", "5", "--isolation", "none"],
            'invalid fan-out config: --isolation must be one of context, page, got "none"',
        ),
    ],
)
def test_fanout_usage_errors_exit_4_with_nothing_written(quarry, storage, args, message):
    res = quarry(LISTING, *args, job={"url": "http://127.0.0.1:9/"})
    assert res.code == 4, res.stderr
    assert message in res.stderr
    assert not storage.exists()


def test_killed_warm_executor_loses_only_its_child(site_url, storage, tmp_path):
    pid_file = tmp_path / "hang.pid"
    env = {**os.environ, "QUARRY_TEST_HANG_SKU": "QS-007", "QUARRY_TEST_PID_FILE": str(pid_file)}
    report_path = tmp_path / "report.json"
    cmd = [
        sys.executable, "-m", "quarry_core.cli", "run", str(SCRIPTS / "fanout_listing.py"),
        "--storage-path", str(storage), "--job", json.dumps({"url": f"{site_url}/index.html"}),
        "--depth", "1", "--max-runs", "20", "--parallel", "2", "--report", str(report_path), "--quiet",
        "--isolation", "page",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not pid_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the hanging child never started"
            time.sleep(0.05)
        victim = int(pid_file.read_text())
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err  # the root succeeded; the crawl finished
    fo = json.loads(report_path.read_text())["fan_out"]
    assert (fo["runs_total"], fo["runs_succeeded"], fo["runs_failed"]) == (12, 11, 1)
    crashed = [c for c in fo["children"] if c["outcome"] != "success"]
    assert [c["outcome"] for c in crashed] == ["executor_crash"]
    record = _latest_runs(storage)[crashed[0]["run_id"]]
    assert record["outcome"] == "executor_crash" and "SIGKILL" in record["message"]
    data = [json.loads(r["payload"])["data"] for r in _items(storage)]
    assert sorted(d["sku"] for d in data) == [s for s in SKUS if s != "QS-007"]
    # warm: 11 children on the pool's 3 processes plus the one that replaced the killed executor
    assert len({d["pid"] for d in data}) <= 4


def test_sigint_mid_crawl_cancels_running_children_and_abandons_the_queue(site_url, storage, tmp_path):
    pid_file = tmp_path / "hang.pid"
    env = {**os.environ, "QUARRY_TEST_HANG_SKU": "QS-001", "QUARRY_TEST_PID_FILE": str(pid_file)}
    report_path = tmp_path / "report.json"
    cmd = [
        sys.executable, "-m", "quarry_core.cli", "run", str(SCRIPTS / "fanout_listing.py"),
        "--storage-path", str(storage), "--job", json.dumps({"url": f"{site_url}/index.html"}),
        "--depth", "1", "--max-runs", "20", "--parallel", "1", "--report", str(report_path), "--quiet",
        "--cancel-grace", "2s",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not pid_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the hanging child never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    fo = json.loads(report_path.read_text())["fan_out"]
    # parallel 1: the first child hangs and is canceled; the second was waiting for its executor and never
    # starts one (canceled too); the 10 still queued are abandoned
    assert [c["outcome"] for c in fo["children"]] == ["canceled", "canceled"]
    assert fo["enqueue_abandoned"] == 10 and fo["runs_total"] == 2
    runs = _latest_runs(storage)
    for child in fo["children"]:
        record = runs[child["run_id"]]
        assert record["state"] == "canceled" and record["outcome"] == "canceled"
    events = [r for r in read_table(storage, "events") if r["run_id"] in {c["run_id"] for c in fo["children"]}]
    assert [json.loads(r["payload"])["error_type"] for r in events if r["event_type"] == "run_error"] == ["canceled"]


def test_a_timed_out_warm_child_is_a_script_error_and_the_crawl_goes_on(quarry, site_url, storage, tmp_path):
    report_path = tmp_path / "report.json"
    env = {"QUARRY_TEST_HANG_SKU": "QS-002", "QUARRY_TEST_PID_FILE": str(tmp_path / "hang.pid")}
    res = quarry(
        SCRIPTS / "fanout_listing.py",
        "--depth", "1", "--max-runs", "20", "--parallel", "2", "--timeout", "4s", "--cancel-grace", "1s",
        "--report", str(report_path),
        job={"url": f"{site_url}/index.html"}, env=env,
    )  # fmt: skip
    assert res.code == 0, res.stderr
    fo = json.loads(report_path.read_text())["fan_out"]
    assert (fo["runs_total"], fo["runs_succeeded"], fo["runs_failed"]) == (12, 11, 1)
    failed = next(c for c in fo["children"] if c["outcome"] != "success")
    record = _latest_runs(storage)[failed["run_id"]]
    assert (record["outcome"], record["error_type"]) == ("script_error", "timeout")
    assert record["message"] == "run exceeded timeout of 4s"
    assert sorted(json.loads(r["payload"])["data"]["sku"] for r in _items(storage)) == [
        s for s in SKUS if s != "QS-002"
    ]
