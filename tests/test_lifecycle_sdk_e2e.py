"""SDK completeness through ``quarry run`` with real Chromium: a failed ``storage.put`` only fails that call, big
sidecar files, ``ctx.memory``, the batchers and the error snapshot."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import events_of, read_table, run_id_from
from quarry_executor.memory import cgroup_usage

pytestmark = pytest.mark.browser


def _items(storage: Path, run_id: str, item_type: str) -> list[dict[str, Any]]:
    out = []
    for event in events_of(storage, run_id):
        payload = json.loads(event["payload"])
        if event["type"] == "item" and payload["item_type"] == item_type:
            out.append(payload["data"])
    return out


@pytest.fixture
def immutable_files_dir(storage: Path) -> Iterator[Path]:
    """The sidecar directory of the dataset made immutable (``chattr +i``): even root gets EPERM there, while the
    event tables next to it stay writable."""
    files = storage / "datasets" / "quarry" / "files"
    files.mkdir(parents=True)
    if shutil.which("chattr") is None:
        pytest.skip("chattr not installed")
    proc = subprocess.run(["chattr", "+i", str(files)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a directory immutable here: {proc.stderr.strip()}")
    try:
        yield files
    finally:
        subprocess.run(["chattr", "-i", str(files)], check=True)


def test_put_to_read_only_storage_fails_that_call_only(quarry: Any, storage: Path, immutable_files_dir: Path) -> None:
    res = quarry("sdk_features.py", job={"mode": "readonly"})
    assert res.code == 0, res.stdout + res.stderr
    run_id = run_id_from(res.stdout)
    [put] = _items(storage, run_id, "put")
    assert put["ok"] is False and put["kind"] == "permission_denied", put  # the storage error class
    assert [row["n"] for row in _items(storage, run_id, "row")] == [0, 1, 2, 3, 4]  # every later item persisted
    assert list(immutable_files_dir.iterdir()) == []
    assert res.summary_value("Outcome") == "success"
    metrics = read_table(storage, "metrics", run_id=run_id)[-1]
    assert metrics["lode_write_failure_total"] == 1


def test_20_mib_sidecar_file_round_trip(quarry: Any, storage: Path) -> None:
    size = 20 * 1024 * 1024 + 3  # not a multiple of the 8 MiB chunk: three file_write_chunk frames
    res = quarry("sdk_features.py", job={"mode": "big", "size": size})
    assert res.code == 0, res.stdout + res.stderr
    [big] = _items(storage, run_id_from(res.stdout), "big")
    stored = (storage / big["key"]).read_bytes()
    assert len(stored) == size
    assert hashlib.sha256(stored).hexdigest() == big["sha256"]


def test_memory_snapshot_sources_and_pressure(quarry: Any, storage: Path, site_url: str) -> None:
    res = quarry("sdk_features.py", job={"mode": "memory", "url": f"{site_url}/index.html"})
    assert res.code == 0, res.stdout + res.stderr
    [mem] = _items(storage, run_id_from(res.stdout), "memory")
    assert mem["process_used"] > 10 * 1024 * 1024  # a Python process with Playwright loaded
    assert mem["process_limit"] > mem["process_used"]
    used, total = mem["browser"]  # CDP Performance.getMetrics of the live page
    assert 0 < used <= total
    assert mem["browser_opted_out"] is True
    here = cgroup_usage()  # the executor runs in the same cgroup as this test
    assert (mem["cgroup"] is None) == (here is None)
    if here is not None:
        assert mem["cgroup"][0] > 0 and mem["cgroup"][1] == here.limit
    assert mem["pressure"] in ("low", "moderate", "high", "critical")
    assert mem["bad_thresholds_rejected"] is True
    assert mem["critical_now"] is True  # thresholds lowered to ~0: every source is critical
    assert mem["above_low"] is True


def test_batchers(quarry: Any, storage: Path) -> None:
    res = quarry("sdk_features.py", job={"mode": "batchers"})
    assert res.code == 0, res.stdout + res.stderr
    run_id = run_id_from(res.stdout)
    enqueues = [json.loads(e["payload"]) for e in events_of(storage, run_id) if e["type"] == "enqueue"]
    assert [len(e["params"]["items"]) for e in enqueues] == [50, 50, 20]
    assert [item["n"] for e in enqueues for item in e["params"]["items"]] == list(range(120))
    assert all(e["target"] == "detail.py" and e["category"] == "details" for e in enqueues)
    [data] = _items(storage, run_id, "batchers")
    assert data["pending_before_flush"] == 20
    assert len(data["keys"]) == 10 and all((storage / key).read_bytes().startswith(b"body ") for key in data["keys"])
    assert data["first_ok"] is True
    assert data["bad_kind"] == "path_exists"
    assert data["queued_failed"] is True and data["late_failed"] is True
    assert data["flush_error"] == "path_exists"
    assert data["pending_after"] == 0
    assert not any(p.name == "never.txt" for p in storage.rglob("never.txt"))


def test_error_snapshot_saves_screenshot_and_html(quarry: Any, storage: Path, site_url: str) -> None:
    res = quarry("raises.py", "--report", "-", "--quiet")
    assert res.code == 1
    report = json.loads(res.stderr[res.stderr.index("{\n") :])
    snapshot = report["terminal_summary"]["error_snapshot"]
    assert "error" not in snapshot, snapshot
    png = (storage / snapshot["screenshot"]["key"]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == snapshot["screenshot"]["size"]
    html = (storage / snapshot["html"]["key"]).read_text()
    assert html.startswith("<html>") or html.startswith("<!DOCTYPE")
    names = {f["filename"] for f in report["sidecar_files"]}
    assert names == {"quarry-error-screenshot.png", "quarry-error-page.html"}
    # the files were written before the terminal event: they are in the persisted run_error
    terminal = events_of(storage, report["run_id"])[-1]
    assert json.loads(terminal["payload"])["error_snapshot"] == snapshot
    # --no-error-snapshot: test_lifecycle_hooks_e2e.py::test_script_error_runs_on_error_then_before_terminal
