"""`quarry lode gc` through the real `quarry` entry point (mounted from the quarry_cli_commands hook): usage errors
exit 4 and create nothing, a missing dataset exits 1, a dry run writes nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from quarry_core.cli import main
from quarry_lode.dataset import Dataset
from quarry_lode.layout import Partition

PART = Partition("s", "default", "2026-11-25", "r1", "item")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "soon"], "--older-than: invalid duration 'soon'"),
        (["--older-than", "-1h"], "--older-than: invalid duration"),
        (
            ["--storage-backend", "redis"],
            'quarry lode gc works on the lode storage backend (lode, fs, s3), not "redis"',
        ),
        (["--storage-dataset", "../x"], 'invalid storage dataset "../x"'),
        (["--storage-option", "novalue"], 'invalid --storage-option "novalue": expected KEY=VALUE'),
        (["--storage-path", "gs://bucket/x"], 'unsupported storage URL scheme "gs"'),
        (["--format", "xml"], 'invalid format: "xml"'),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_exit_4_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    target = tmp_path / "data"
    argv = ["lode", "gc", "--storage-path", str(target), *args]
    if "--storage-path" in args:
        argv = ["lode", "gc", *args]
    assert main(argv) == 4
    assert message in capsys.readouterr().err
    assert not target.exists()


def test_missing_dataset_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lode", "gc", "--storage-path", str(tmp_path / "none")]) == 1
    assert f"no dataset at {tmp_path / 'none'}/datasets/quarry" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_dry_run_then_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = Dataset.open(str(tmp_path))
    ds.write({("events", PART): [_row()]}, metadata={})
    old = time.time() - 3 * 24 * 3600
    sid = f"{int(old * 1e9):020d}-0badc0de"
    leftover = Path(ds.layout.path(ds.layout.data_relpath("events", PART, sid, "parquet")))
    ds.store.put(str(leftover), b"torn")
    os.utime(leftover, (old, old))

    assert main(["lode", "gc", "--storage-path", str(tmp_path), "-f", "json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert [c["path"] for c in report["candidates"]] == [str(leftover.relative_to(ds.layout.base))]
    assert report["candidates"][0]["snapshot_id"] == sid and report["candidate_bytes"] == 4
    assert "dry run: 1 file(s) older than 24h (4 bytes) would be deleted; add --apply to delete" in out.err
    assert leftover.exists()

    assert main(["lode", "gc", "--storage-path", str(tmp_path), "--older-than", "48h", "--apply", "-f", "yaml"]) == 0
    out = capsys.readouterr()
    assert "deleted_count: 1" in out.out and "deleted 1 of 1 file(s) older than 48h" in out.err
    assert not leftover.exists()


def test_environment_variables_like_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Dataset.open(str(tmp_path), "other").write({("events", PART): [_row()]}, metadata={})
    monkeypatch.setenv("QUARRY_STORAGE_PATH", str(tmp_path))
    monkeypatch.setenv("QUARRY_STORAGE_DATASET", "other")
    assert main(["lode", "gc", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == f"{tmp_path}/datasets/other"


def _row() -> dict[str, object]:
    from datetime import UTC, datetime

    return {
        "record_kind": "event",
        "contract_version": "1.0.0",
        "event_id": "e1",
        "seq": 1,
        "type": "item",
        "ts": datetime(2026, 11, 25, tzinfo=UTC),
        "payload": "{}",
        "attempt": 1,
        "policy": "strict",
    }


def test_config_file_like_the_other_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--config` (and `--no-config`) as every command takes them (CONTRACT_CLI): the file's storage is used."""
    Dataset.open(str(tmp_path / "store"), "other").write({("events", PART): [_row()]}, metadata={})
    config = tmp_path / "quarry.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "store"}"\ndataset = "other"\n')
    assert main(["lode", "gc", "--config", str(config), "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == f"{tmp_path / 'store'}/datasets/other"

    assert main(["lode", "gc", "--config", str(tmp_path / "missing.toml")]) == 4
    assert "missing.toml" in capsys.readouterr().err
