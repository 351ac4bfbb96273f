"""Storage failures end a real `quarry run` with exit 3 (policy_failure) and a message naming the operation and the
path (lode.md §10).

Tests run as root, where ``chmod 0555`` stops nothing, so "read-only" must be real:

- ``ro-mount``: the storage directory bind-mounted read-only onto itself inside a private mount namespace
  (``unshare -m``), so the mount vanishes with the process and nothing leaks (EROFS);
- ``immutable``: ``chattr +i`` on the storage directory, which stops root too (EPERM);

each used where the sandbox allows it (probed first) and skipped with the reason otherwise. Disk full is a real
file-size limit (``ulimit -f``): the write fails with EFBIG, which Quarry counts as ``disk_full`` (the runtime
ignores SIGXFSZ so the limit surfaces as an error instead of killing it).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import ROOT

ENV = {**os.environ, "FAKE_SCENARIO": "ok"}


def _probe_ro_mount(tmp: Path) -> str | None:
    if shutil.which("unshare") is None:
        return "unshare not installed"
    target = tmp / "probe-ro"
    target.mkdir(exist_ok=True)
    script = f"mount --bind {target} {target} && mount -o remount,bind,ro {target} && ! touch {target}/x"
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    return None if proc.returncode == 0 else f"read-only bind mount not permitted here: {proc.stderr.strip()}"


def _probe_immutable(tmp: Path) -> str | None:
    if shutil.which("chattr") is None:
        return "chattr not installed"
    target = tmp / "probe-immutable"
    target.mkdir(exist_ok=True)
    proc = subprocess.run(["chattr", "+i", str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"chattr +i not supported here: {proc.stderr.strip()}"
    try:
        (target / "x").write_text("x")
    except OSError:
        return None
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=False)
    return "chattr +i does not stop writes here"


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV, cwd=ROOT)


def _quarry_cmd(script: Path, storage: Path, fake_python: str) -> list[str]:
    return [
        sys.executable, "-m", "quarry_core.cli", "run", str(script),
        "--storage-path", str(storage), "--executor-python", fake_python,
    ]  # fmt: skip


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "shop.py"
    path.write_text("async def run(ctx):\n    pass\n")
    return path


def _assert_storage_failure(res: subprocess.CompletedProcess[str], storage: Path, kind: str, cause: str) -> None:
    assert res.returncode == 3, res.stdout + res.stderr
    assert "outcome=policy_failure" in res.stdout.splitlines()[0]
    (message,) = [line for line in res.stdout.splitlines() if line.startswith("Message: ")]
    # "<op> <path>: <kind>: <cause>" for the first event file the policy tried to write
    assert f"write {storage}/datasets/quarry/events/source=shop/category=default/day=" in message, message
    assert f".parquet: {kind}: " in message and cause in message, message
    assert "Warning: could not write the final run and metrics records: write " in res.stderr


def _run_read_only(read_only: Path, cmd: list[str], mechanism: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``cmd`` while ``read_only`` cannot be written, even by root; return the result and the OS error text."""
    if mechanism == "ro-mount":
        mount = (
            f"mount --bind {read_only} {read_only} && mount -o remount,bind,ro {read_only} && exec {shlex.join(cmd)}"
        )
        return _run(["unshare", "-m", "sh", "-c", mount]), "[Errno 30] Read-only file system"
    subprocess.run(["chattr", "+i", str(read_only)], check=True)
    try:
        return _run(cmd), "[Errno 1] Operation not permitted"
    finally:
        subprocess.run(["chattr", "-i", str(read_only)], check=True)


def _need(mechanism: str, tmp_path: Path) -> None:
    reason = (_probe_ro_mount if mechanism == "ro-mount" else _probe_immutable)(tmp_path)
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("mechanism", ["ro-mount", "immutable"])
def test_read_only_storage_is_exit_3_naming_op_and_path(
    tmp_path: Path, script: Path, fake_python: str, mechanism: str
) -> None:
    _need(mechanism, tmp_path)
    storage = tmp_path / "readonly"
    storage.mkdir()
    res, cause = _run_read_only(storage, _quarry_cmd(script, storage, fake_python), mechanism)
    _assert_storage_failure(res, storage, "permission_denied", cause)
    assert list(storage.iterdir()) == []  # nothing got through


def test_failed_commit_leaves_files_that_lode_gc_removes(tmp_path: Path, script: Path, fake_python: str) -> None:
    """Manifests cannot be written (``_snapshots`` read-only) while data files can: a real run leaves data files
    that never committed. `quarry lode gc` lists exactly those, writes nothing, and deletes them with --apply."""
    mechanism = "ro-mount" if _probe_ro_mount(tmp_path) is None else "immutable"
    _need(mechanism, tmp_path)  # skips when neither works
    import pyarrow.dataset as pads

    from quarry_lode import open_dataset

    storage = tmp_path / "data"
    ok = _run(_quarry_cmd(script, storage, fake_python))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    base = storage / "datasets" / "quarry"
    committed_files = {p for p in base.rglob("part-*")}
    committed_rows = open_dataset(str(storage)).read("events").to_pylist()

    res, cause = _run_read_only(base / "_snapshots", _quarry_cmd(script, storage, fake_python), mechanism)
    assert res.returncode == 3, res.stdout + res.stderr
    (message,) = [line for line in res.stdout.splitlines() if line.startswith("Message: ")]
    assert f"write {base}/_snapshots/" in message and f".json: permission_denied: {cause}" in message, message
    leftovers = {p for p in base.rglob("part-*")} - committed_files
    assert leftovers, "the failed run should have left uncommitted data files"

    def gc(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "quarry_core.cli", "lode", "gc", "--storage-path", str(storage), "-f", "json"]
        return _run([*cmd, *args])

    before = {p: p.stat().st_mtime_ns for p in storage.rglob("*")}
    young = gc()  # default --older-than 24h: everything is too young
    assert young.returncode == 0, young.stderr
    assert json.loads(young.stdout)["candidate_count"] == 0
    dry = gc("--older-than", "0")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert {base / c["path"] for c in report["candidates"]} == leftovers
    assert {c["reason"] for c in report["candidates"]} == {"uncommitted"}
    assert "dry run:" in dry.stderr and "add --apply" in dry.stderr
    assert {p: p.stat().st_mtime_ns for p in storage.rglob("*")} == before  # the dry run wrote nothing

    applied = gc("--older-than", "0", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["deleted_count"] == len(leftovers)
    assert {p for p in base.rglob("part-*")} == committed_files
    assert open_dataset(str(storage)).read("events").to_pylist() == committed_rows
    raw = pads.dataset(str(base / "events"), format="parquet", partitioning="hive").to_table()
    assert raw.num_rows == len(committed_rows)  # raw readers no longer see the failed run
    assert json.loads(gc("--older-than", "0").stdout)["candidate_count"] == 0


def test_disk_full_under_ulimit_is_exit_3_naming_op_and_path(tmp_path: Path, script: Path, fake_python: str) -> None:
    storage = tmp_path / "small"
    cmd = _quarry_cmd(script, storage, fake_python)
    # 2 KiB: smaller than any Parquet file Quarry writes, so the first event write fails with EFBIG
    res = _run(["bash", "-c", f"ulimit -f 2 && exec {shlex.join(cmd)}"])
    _assert_storage_failure(res, storage, "disk_full", "[Errno 27] File too large")
    leftovers = [p for p in storage.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers  # the partial temp files were removed, no torn data file remains
