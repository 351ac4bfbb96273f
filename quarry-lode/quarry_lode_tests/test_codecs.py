from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
import zstandard

from quarry_lode.codecs import SCHEMAS, decode_file, encode_rows, format_ts, parse_ts, prepare_record
from quarry_lode.settings import validate_codec

PART = {"source": "s", "category": "c", "day": "2026-11-25", "run_id": "r1", "event_type": "artifact"}
CHUNK = {
    "record_kind": "artifact_chunk",
    "artifact_id": "a",
    "seq": 1,
    "is_last": True,
    "offset": 0,
    "length": 3,
    "data": b"\x00\xffz",
    "checksum": "x",
    "checksum_algo": "md5",
}


@pytest.mark.parametrize(
    ("codec", "compression", "ext"),
    [
        ("parquet", "zstd", "parquet"),
        ("parquet", "snappy", "parquet"),
        ("parquet", "gzip", "parquet"),
        ("parquet", "none", "parquet"),
        ("jsonl", "none", "jsonl"),
        ("jsonl", "gzip", "jsonl.gz"),
        ("jsonl", "zstd", "jsonl.zst"),
    ],
)
def test_round_trip(codec: str, compression: str, ext: str) -> None:
    data = encode_rows("chunks", [CHUNK], codec, compression)
    table = decode_file(data, ext, "chunks")
    assert table.to_pylist() == [CHUNK]
    assert table.schema.names == SCHEMAS["chunks"].names


def test_parquet_uses_zstd_by_default() -> None:
    import io

    second = dict(CHUNK, seq=2, offset=CHUNK["length"])
    data = encode_rows("chunks", [CHUNK, second], "parquet", "zstd")
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert all(meta.row_group(0).column(i).compression == "ZSTD" for i in range(meta.num_columns))
    assert "source" not in pq.read_schema(io.BytesIO(data)).names  # partition columns never stored


@pytest.mark.parametrize("compression", ["zstd", "snappy", "gzip"])
def test_one_row_parquet_files_are_uncompressed_and_smaller(compression: str) -> None:
    import io

    import pyarrow as pa

    row = {"record_kind": "event", "seq": 1, "type": "item", "payload": '{"item_type":"row","data":{"i":1}}'}
    data = encode_rows("events", [row], "parquet", compression)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"UNCOMPRESSED"}
    sink = pa.BufferOutputStream()  # what the configured compression would have written
    arrow = pa.Table.from_pylist([row], schema=SCHEMAS["events"])
    pq.write_table(arrow, sink, compression=compression, use_dictionary=False)
    assert len(data) < sink.getvalue().size
    assert pq.read_table(io.BytesIO(data)).equals(arrow)


def test_jsonl_shape() -> None:
    ts = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)
    row = {"record_kind": "event", "seq": 1, "ts": ts, "payload": '{"a":1}', "policy": "strict"}
    line = encode_rows("events", [row], "jsonl", "none").decode()
    assert line.endswith("\n") and line.count("\n") == 1
    obj = json.loads(line)
    assert obj["ts"] == "2026-11-25T10:00:00.123Z"
    assert obj["payload"] == '{"a":1}'
    assert obj["artifact_id"] is None
    chunk = json.loads(encode_rows("chunks", [CHUNK], "jsonl", "none"))
    assert base64.b64decode(chunk["data"]) == b"\x00\xffz"
    assert gzip.decompress(encode_rows("chunks", [CHUNK], "jsonl", "gzip")).startswith(b"{")
    assert (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(encode_rows("chunks", [CHUNK], "jsonl", "zstd"))
        .startswith(b"{")
    )


def test_timestamps() -> None:
    assert parse_ts("2026-11-25T10:00:00Z") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_ts("2026-11-25T11:00:00+01:00") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_ts("2026-11-25T10:00:00")
    assert format_ts(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert format_ts(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), digits=6) == "2026-01-02T03:04:05.678901Z"


def test_prepare_run_record() -> None:
    row = prepare_record(
        "runs",
        {
            "run_id": "r1",
            "source": "s",
            "state": "succeeded",
            "updated_at": "2026-11-25T10:00:00.000Z",
            "job": '{"a":1}',
            "policy_config": {"name": "strict"},
            "dropped_by_type": {"log": 2},
            "proxy_used": {"protocol": "http", "host": "h", "port": 8080},
            "ipc": {"frames_received": 1, "bytes_received": 2, "decode_errors": 0},
            "sidecar_files": [{"filename": "f", "content_type": "t", "size": 1, "key": "k"}],
            "orphaned_artifact_ids": ["x"],
        },
        {**PART, "event_type": "run"},
    )
    assert row["record_kind"] == "run"
    assert "run_id" not in row and "source" not in row
    assert row["policy_config"] == '{"name":"strict"}'
    assert row["proxy_used"] == {"protocol": "http", "host": "h", "port": 8080, "username": None}
    data = encode_rows("runs", [row], "parquet", "zstd")
    back = decode_file(data, "parquet", "runs").to_pylist(maps_as_pydicts="strict")[0]
    assert back["dropped_by_type"] == {"log": 2}
    assert back["updated_at"] == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert back["outcome"] is None


@pytest.mark.parametrize(
    ("table", "record", "message"),
    [
        ("runs", {"updated_at": "2026-11-25T10:00:00Z", "nope": 1}, "unknown field 'nope'"),
        ("runs", {"state": "running"}, "runs record missing required field: updated_at"),
        ("runs", {"updated_at": "yesterday"}, "not an RFC 3339 timestamp"),
        ("runs", {"updated_at": "2026-11-25T10:00:00Z", "run_id": "other"}, "does not match"),
        ("runs", {"updated_at": "2026-11-25T10:00:00Z", "event_count": "3"}, "expected an integer"),
        ("runs", {"updated_at": "2026-11-25T10:00:00Z", "ipc": {"bogus": 1}}, "unknown field"),
        (
            "metrics",
            {"ts": "2026-11-25T10:00:00Z", "policy": "strict", "executor": "x"},
            "metrics record missing required field: storage_backend",
        ),
        ("metrics", {"record_kind": "run"}, "record_kind must be 'metrics'"),
        ("events", {}, "does not take records"),
    ],
)
def test_prepare_rejects_drift(table: str, record: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_record(table, record, PART)


def test_codec_validation() -> None:
    assert validate_codec("parquet", None) == ("parquet", "zstd")
    assert validate_codec("jsonl", None) == ("jsonl", "none")
    with pytest.raises(ValueError, match='invalid storage codec "csv"'):
        validate_codec("csv", None)
    with pytest.raises(ValueError, match='invalid storage compression "snappy" for codec jsonl'):
        validate_codec("jsonl", "snappy")


def test_decode_tolerates_missing_and_extra_columns() -> None:
    import io

    import pyarrow as pa

    old = pa.table({"record_kind": ["artifact_chunk"], "artifact_id": ["a"], "future_col": [1]})
    buf = io.BytesIO()
    pq.write_table(old, buf)
    table = decode_file(buf.getvalue(), "parquet", "chunks")
    assert table.schema.names[: len(SCHEMAS["chunks"])] == SCHEMAS["chunks"].names
    assert table.column("future_col").to_pylist() == [1]
    assert table.column("data").to_pylist() == [None]
