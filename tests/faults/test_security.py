"""Nothing a script or an operator passes can write outside its partition: partition values are escaped
(and read back unchanged), sidecar file names that try to escape are refused before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e_helpers import events_of, read_table, run_id_from

HOSTILE_SOURCES = ["../evil", "a/b", "%2f", "/abs", "a\x01b", ".", "..", "x\\y"]


def _files_outside(root: Path, storage: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and storage not in p.parents]


@pytest.mark.parametrize("source", HOSTILE_SOURCES, ids=repr)
def test_hostile_partition_values_stay_inside_and_read_back(quarry, tmp_path: Path, source: str) -> None:
    storage = tmp_path / "nest" / "data"
    res = quarry("artifact.py", "--source", source, "--category", source, storage_path=storage)
    assert res.code == 0, res.stdout + res.stderr
    assert _files_outside(tmp_path, storage) == []
    for table in ("events", "runs", "metrics"):
        table_dir = storage / "datasets" / "quarry" / table
        tops = [p.name for p in table_dir.iterdir()]
        assert len(tops) == 1 and tops[0].startswith("source="), tops
        assert "/" not in tops[0] and tops[0] not in ("source=.", "source=..")
    rows = events_of(storage, run_id_from(res.stdout))
    assert rows and {(r["source"], r["category"]) for r in rows} == {(source, source)}
    assert len(read_table(storage, "events", source=source, category=source)) == len(rows)


def test_sidecar_names_that_escape_are_refused_before_sending(quarry, tmp_path: Path) -> None:
    storage = tmp_path / "nest" / "data"
    res = quarry("escape_put.py", storage_path=storage)
    assert res.code == 0, res.stdout + res.stderr
    rows = [r for r in events_of(storage, run_id_from(res.stdout)) if r["event_type"] == "item"]
    rejected = json.loads(rows[0]["payload"])["data"]["rejected"]
    assert [r["name"] for r in rejected] == ["../escape.txt", "a/b.txt", "/etc/passwd", "x\x00y", "..", ""]
    assert all(r["message"] for r in rejected)
    files = sorted(p.name for p in (storage / "datasets" / "quarry" / "files").rglob("*") if p.is_file())
    assert files == ["fine.txt", "fine.txt.meta.json"]
    assert _files_outside(tmp_path, storage) == []
