from __future__ import annotations

import pytest

from quarry_lode.layout import (
    Layout,
    Partition,
    data_extension,
    parse_data_filename,
    parse_partition,
    validate_dataset_name,
)


def test_paths() -> None:
    layout = Layout("/data", "quarry")
    part = Partition("shop/eu", "default", "2026-11-25", "r1", "item")
    sid = "01764093543123456789-9f3a1c2e"
    rel = layout.data_relpath("events", part, sid, "parquet")
    assert rel == (
        "events/source=shop%2Feu/category=default/day=2026-11-25/run_id=r1/event_type=item/"
        "part-01764093543123456789-9f3a1c2e.parquet"
    )
    assert layout.manifest_path(sid) == "/data/datasets/quarry/_snapshots/2025-11-25/01764093543123456789-9f3a1c2e.json"
    assert layout.pointer_path == "/data/datasets/quarry/_latest"
    assert layout.sidecar_key("shop/eu", "default", "2026-11-25", "r1", "report.json") == (
        "datasets/quarry/files/source=shop%2Feu/category=default/day=2026-11-25/run_id=r1/report.json"
    )
    assert parse_partition(rel.split("/", 1)[1].rsplit("/", 1)[0]) == part
    assert parse_data_filename(rel.rsplit("/", 1)[1]) == (sid, "parquet")


def test_filenames_cannot_escape_their_directory() -> None:
    key = Layout("/data").sidecar_key("s", "c", "2026-11-25", "r", "../../etc/passwd")
    assert key.endswith("/run_id=r/..%2F..%2Fetc%2Fpasswd")


def test_extensions_and_names() -> None:
    assert data_extension("parquet", "zstd") == "parquet"
    assert data_extension("jsonl", "none") == "jsonl"
    assert data_extension("jsonl", "gzip") == "jsonl.gz"
    assert data_extension("jsonl", "zstd") == "jsonl.zst"
    assert parse_data_filename(".part-x.tmp") is None
    assert validate_dataset_name("quarry.v2_a-b") == "quarry.v2_a-b"
    for bad in ("", ".hidden", "a/b", "x" * 129):
        with pytest.raises(ValueError, match="invalid dataset name"):
            validate_dataset_name(bad)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        Partition("s", "c", "25.11.2026", "r", "item").relpath()
