"""Column-wise event rows write the same data as row dicts, small files read identically without dictionary
pages, and the local store's directory cache survives directories removed behind its back."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quarry_core.interfaces import RunPartition
from quarry_core.protocol import RunRequest, decode_payload, parse_executor_frame
from quarry_core.protocol.frames import Event
from quarry_lode.backend import EventRows, LodeBackend, event_row
from quarry_lode.codecs import DICTIONARY_COLUMNS, DICTIONARY_MIN_ROWS, EVENTS_SCHEMA, SCHEMAS, encode_rows
from quarry_lode.dataset import _ts_range
from quarry_lode.reader import open_dataset


def _events(n: int, **lineage: Any) -> list[Event]:
    from quarry_executor.envelope import EnvelopeFactory

    factory = EnvelopeFactory(RunRequest(run_id="r1", attempt=2, script="s.py", job={}, **lineage))
    out: list[Event] = []
    for i in range(1, n + 1):
        body = factory.encode("item", {"item_type": "row", "data": {"i": i, "name": f"ïtem-{i}", "x": None}}, i)[4:]
        event = parse_executor_frame(decode_payload(body), wire_size=len(body))
        assert isinstance(event, Event)
        out.append(event)
    return out


def _mixed() -> list[Event]:
    events = _events(70, job_id="j1", parent_run_id="p0", depth=2)
    events.append(
        Event(
            event_id=str(uuid.uuid4()),
            run_id="r1",
            seq=71,
            type="artifact",
            ts="2026-11-25T12:00:00.123+02:00",  # an offset: parsed, not taken as text
            payload={"artifact_id": str(uuid.uuid4()), "name": "a.png", "content_type": "image/png", "size_bytes": 9},
        )
    )
    events.append(
        Event(
            event_id=str(uuid.uuid4()),
            run_id="r1",
            seq=72,
            type="artifact",
            ts="2026-11-25T09:00:00.000Z",
            payload={"artifact_id": str(uuid.uuid4()), "name": "b", "content_type": "x/y", "size_bytes": True},
        )
    )
    return events


@pytest.mark.parametrize("n", [1, 3, DICTIONARY_MIN_ROWS + 8])
def test_event_rows_equal_row_dicts(n: int) -> None:
    events = _mixed()[-n:] if n < 3 else (_mixed() if n > 3 else _events(3))
    rows = [event_row(e, "strict") for e in events]
    columnar = EventRows(events, "strict")
    assert list(columnar) == rows and columnar[0] == rows[0] and columnar[1:3] == rows[1:3] and len(columnar) == n
    assert columnar.to_arrow().equals(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA))
    assert _ts_range("events", columnar) == _ts_range("events", rows)
    assert encode_rows("events", columnar, "jsonl", "none") == encode_rows("events", rows, "jsonl", "none")
    data = encode_rows("events", columnar, "parquet", "zstd")
    if n >= DICTIONARY_MIN_ROWS:  # the same bytes as before
        assert data == encode_rows("events", rows, "parquet", "zstd")
    table = pq.read_table(io.BytesIO(data))
    assert table.equals(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA))


def test_small_files_without_dictionary_pages_read_identically_with_duckdb(tmp_path: Path) -> None:
    events = _mixed()[-2:]
    rows = [event_row(e, "strict") for e in events]
    small, big = tmp_path / "small.parquet", tmp_path / "big.parquet"
    small.write_bytes(encode_rows("events", EventRows(events, "strict"), "parquet", "zstd"))
    big.write_bytes(encode_rows("events", rows * DICTIONARY_MIN_ROWS, "parquet", "zstd"))  # dictionary pages
    meta = pq.ParquetFile(small).metadata.row_group(0)
    assert all(
        "RLE_DICTIONARY" not in meta.column(i).encodings and meta.column(i).compression == "ZSTD"  # 2 rows
        for i in range(meta.num_columns)
    )
    assert "RLE_DICTIONARY" in pq.ParquetFile(big).metadata.row_group(0).column(0).encodings
    con = duckdb.connect()
    got_small = con.execute(f"SELECT * FROM read_parquet('{small}') ORDER BY seq").fetchall()
    got_big = con.execute(f"SELECT DISTINCT * FROM read_parquet('{big}') ORDER BY seq").fetchall()
    assert got_small == got_big and len(got_small) == 2
    assert (
        con.execute(f"DESCRIBE SELECT * FROM read_parquet('{small}')").fetchall()
        == con.execute(f"DESCRIBE SELECT * FROM read_parquet('{big}')").fetchall()
    )


def test_write_events_stores_columnar_batches_readably(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition
) -> None:
    backend = backend_factory()
    run = backend.open_run(partition)
    events = _events(100, job_id="j1")
    shuffled = events[50:] + events[:50]  # rows are still stored in seq order
    asyncio.run(run.write_events(shuffled, policy="streaming"))
    log = Event("e", "r1", 101, "log", "2026-11-25T10:00:00.000Z", {"level": "info", "message": "m"})
    asyncio.run(run.write_events([log], policy="streaming"))
    table = open_dataset(backend.root_url).read("events", run_id="r1")
    assert table.num_rows == 101
    items = table.filter(pa.compute.equal(table["type"], "item"))
    assert items["seq"].to_pylist() == list(range(1, 101))
    assert items["event_id"].to_pylist() == [e.event_id for e in events]
    assert set(items["job_id"].to_pylist()) == {"j1"} and set(items["policy"].to_pylist()) == {"streaming"}


def test_local_store_recreates_a_directory_removed_behind_its_back(tmp_path: Path) -> None:
    from quarry_lode.dataset import Dataset
    from quarry_lode.layout import Partition

    ds = Dataset.open(str(tmp_path / "root"))
    part = Partition("s", "c", "2026-11-25", "r1", "item")
    rows = [event_row(e, "strict") for e in _events(2)]
    assert ds.write({("events", part): rows[:1]}, metadata={"run_id": "r1"}) is not None
    shutil.rmtree(tmp_path / "root" / "datasets")  # the directories the store knows are gone
    sid = ds.write({("events", part): rows[1:]}, metadata={"run_id": "r1"})
    assert sid is not None and ds.manifest_exists(sid)
    assert open_dataset(str(tmp_path / "root")).read("events")["seq"].to_pylist() == [2]


@given(
    st.lists(
        st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
        | st.datetimes(timezones=st.just(timezone(timedelta(hours=-7, minutes=-30)))),
        min_size=1,
        max_size=12,
    )
)
@settings(max_examples=200, deadline=None)
def test_the_ts_column_is_what_pyarrow_makes_of_each_datetime(stamps: list[datetime]) -> None:
    """Milliseconds computed once per text equal pyarrow's conversion of the parsed datetime (floored, before
    1970 too), with offsets and sub-millisecond digits; ``ts_range`` equals the row dicts' range."""
    events = [
        Event(event_id=f"e{i}", run_id="r1", seq=i + 1, type="item", ts=ts.isoformat(), payload={"item_type": "t"})
        for i, ts in enumerate(stamps + stamps[:1])  # a text seen again further on
    ]
    rows = [event_row(e, "streaming") for e in events]
    columnar = EventRows(events, "streaming")
    assert columnar.to_arrow().equals(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA))
    assert _ts_range("events", columnar) == _ts_range("events", rows)


def test_only_repeating_text_columns_get_dictionary_pages() -> None:
    """From DICTIONARY_MIN_ROWS rows on, the columns named in DICTIONARY_COLUMNS are dictionary-encoded and the
    unique ones (event ids, payloads, seq, a chunk's bytes) are not; the values read back unchanged."""
    for table, names in DICTIONARY_COLUMNS.items():
        assert set(names) <= set(SCHEMAS[table].names), table
    events = _events(DICTIONARY_MIN_ROWS + 8)
    data = encode_rows("events", EventRows(events, "strict"), "parquet", "zstd")
    meta = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    encoded = {
        meta.column(i).path_in_schema: "RLE_DICTIONARY" in meta.column(i).encodings for i in range(meta.num_columns)
    }
    assert {name for name, dictionary in encoded.items() if dictionary} == set(DICTIONARY_COLUMNS["events"])
    rows = [event_row(e, "strict") for e in events]
    assert pq.read_table(io.BytesIO(data)).equals(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA))
    chunk_rows = [
        {
            "record_kind": "artifact_chunk",
            "artifact_id": "a1",
            "seq": i + 1,
            "is_last": i == DICTIONARY_MIN_ROWS,
            "offset": i * 3,
            "length": 3,
            "data": bytes([i, i, i]),
            "checksum": f"{i:032x}",
            "checksum_algo": "md5",
        }
        for i in range(DICTIONARY_MIN_ROWS + 1)
    ]
    chunks = pq.ParquetFile(io.BytesIO(encode_rows("chunks", chunk_rows, "parquet", "zstd")))
    meta = chunks.metadata.row_group(0)
    by_name = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" in by_name["artifact_id"] and "RLE_DICTIONARY" not in by_name["data"]
    assert chunks.read().to_pylist()[5]["data"] == bytes([5, 5, 5])


def test_payload_column_is_compact_json_also_where_orjson_declines() -> None:
    """The payload column is ``json.dumps(payload, separators=(",", ":"), ensure_ascii=False)`` for every row of
    a batch, also when one payload holds an integer beyond 64 bits (orjson refuses it; the batch falls back)."""
    events = _events(3)
    payloads = [{"item_type": "row", "data": {"n": 2**70, "s": "ünï"}}, {"item_type": "row", "data": {"f": 0.1}}]
    events[1] = attrs.evolve(events[1], payload=payloads[0])
    for batch in (events, [events[0], events[2]]):
        column = EventRows(batch, "strict").to_arrow().column("payload").to_pylist()
        assert column == [json.dumps(e.payload, separators=(",", ":"), ensure_ascii=False) for e in batch]
    assert EventRows([attrs.evolve(events[0], payload=payloads[1])], "s").to_arrow().column("payload")[0].as_py() == (
        '{"item_type":"row","data":{"f":0.1}}'
    )


_json_leaves = st.one_of(
    st.text(alphabet=st.sampled_from([*'ab,[]{}":\\ü\n\t', "\U0001f600"]), max_size=8),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
_json_payloads = st.dictionaries(
    st.text(alphabet=st.sampled_from(list('k,]}"\\é')), max_size=4),
    st.recursive(
        _json_leaves,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
        max_leaves=12,
    ),
    max_size=4,
)


@given(st.lists(_json_payloads, min_size=1, max_size=8), st.booleans())
@settings(max_examples=300, deadline=None)
def test_the_payload_column_cut_from_one_orjson_text_equals_one_text_per_row(
    payloads: list[dict[str, Any]], child: bool
) -> None:
    """With quarry-speedups the payload column is cut out of one ``orjson.dumps`` of the batch (commas, brackets,
    quotes and backslashes inside strings included); it equals the row-by-row texts, and the whole table equals
    the row dicts' (text columns that repeat one value, lineage among them, as repeated scalars)."""
    from quarry_lode import backend

    if backend._split_json_array is None:
        pytest.skip("quarry-speedups is not installed")
    events = [
        Event(
            event_id=f"e{i}",
            run_id="r1",
            seq=i + 1,
            type="item" if i % 3 else "log",
            ts="2026-11-25T10:00:00.000Z",
            payload=p,
            job_id="j1" if child else None,
            parent_run_id=None if i % 2 else "p1",
        )
        for i, p in enumerate(payloads)
    ]
    rows = [event_row(e, "streaming") for e in events]
    table = EventRows(events, "streaming").to_arrow()
    assert table.column("payload").to_pylist() == [backend._json(p) for p in payloads]
    assert table.equals(pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA))


def test_the_payload_column_without_the_compiled_cutter_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without quarry-speedups (or when orjson refuses a payload of the batch) each row's text is written on its
    own: the same column."""
    from quarry_lode import backend

    events = _events(5)
    with_cutter = EventRows(events, "strict").to_arrow()
    monkeypatch.setattr(backend, "_split_json_array", None)
    assert EventRows(events, "strict").to_arrow().equals(with_cutter)
    assert with_cutter.column("payload").to_pylist() == [backend._json(e.payload) for e in events]
    assert EventRows([], "strict").to_arrow().equals(EVENTS_SCHEMA.empty_table())
