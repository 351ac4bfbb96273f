"""Fixed table schemas and the Parquet / JSONL codecs (lode.md §7).

Rows are plain dicts of Python values: ``str``, ``int``, ``bool``, ``bytes``, tz-aware ``datetime`` for
timestamps, dicts for counter maps and structs, lists. :func:`prepare_record` turns what the runtime hands
over (RFC 3339 strings, mappings for JSON columns) into such rows and rejects unknown fields, so a drift
between the runtime and these schemas fails loudly. Partition columns are never stored in data files.

A batch may also come as :class:`ColumnarRows` (the ``events`` rows of a batch of events): it is still a
sequence of such rows, and it builds its Arrow table column by column, without a dict per row.
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeGuard

import attrs
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from quarry_lode.layout import PARTITION_KEYS

__all__ = [
    "CHUNKS_SCHEMA",
    "EVENTS_SCHEMA",
    "JSON_COLUMNS",
    "METRICS_COUNTERS",
    "METRICS_SCHEMA",
    "OUTBOX_SCHEMA",
    "RECORD_KINDS",
    "RUNS_SCHEMA",
    "SCHEMAS",
    "TS_COLUMNS",
    "ColumnarRows",
    "decode_file",
    "encode_rows",
    "format_ts",
    "is_columnar",
    "parse_ts",
    "prepare_record",
]

_TS = pa.timestamp("ms", tz="UTC")
_COUNTERS = pa.map_(pa.string(), pa.int64())

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("record_kind", pa.string(), nullable=False),
        ("contract_version", pa.string()),
        ("event_id", pa.string()),
        ("seq", pa.int64()),
        ("type", pa.string()),
        ("ts", _TS),
        ("payload", pa.string()),
        ("attempt", pa.int32()),
        ("job_id", pa.string()),
        ("parent_run_id", pa.string()),
        ("spawned_by_run_id", pa.string()),
        ("depth", pa.int32()),
        ("policy", pa.string()),
        ("artifact_id", pa.string()),
        ("name", pa.string()),
        ("content_type", pa.string()),
        ("size_bytes", pa.int64()),
    ]
)

CHUNKS_SCHEMA = pa.schema(
    [
        pa.field("record_kind", pa.string(), nullable=False),
        ("artifact_id", pa.string()),
        ("seq", pa.int64()),
        ("is_last", pa.bool_()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
        ("data", pa.binary()),
        ("checksum", pa.string()),
        ("checksum_algo", pa.string()),
    ]
)

#: Counters of runtime.md §7-§8, stored under their ``*_total`` names.
METRICS_COUNTERS: tuple[str, ...] = (
    "runs_started_total",
    "runs_completed_total",
    "runs_failed_total",
    "runs_crashed_total",
    "runs_canceled_total",
    "events_received_total",
    "events_persisted_total",
    "events_dropped_total",
    "events_unflushed_total",
    "executor_launch_success_total",
    "executor_launch_failure_total",
    "executor_crash_total",
    "ipc_decode_errors_total",
    "ipc_frames_received_total",
    "lode_write_success_total",
    "lode_write_failure_total",
    "lode_write_retry_total",
    "policy_flushes_total",
    "policy_flush_failures_total",
)

METRICS_SCHEMA = pa.schema(
    [
        pa.field("record_kind", pa.string(), nullable=False),
        ("ts", _TS),
        *[(name, pa.int64()) for name in METRICS_COUNTERS],
        ("dropped_by_type", _COUNTERS),
        ("dropped_by_reason", _COUNTERS),
        ("flush_triggers", _COUNTERS),
        ("buffer_high_water_events", pa.int64()),
        ("buffer_high_water_bytes", pa.int64()),
        ("policy", pa.string()),
        ("executor", pa.string()),
        ("storage_backend", pa.string()),
        ("job_id", pa.string()),
    ]
)

_SIDECAR = pa.struct(
    [("filename", pa.string()), ("content_type", pa.string()), ("size", pa.int64()), ("key", pa.string())]
)
_PROXY = pa.struct([("protocol", pa.string()), ("host", pa.string()), ("port", pa.int32()), ("username", pa.string())])
_IPC = pa.struct(
    [
        ("frames_received", pa.int64()),
        ("bytes_received", pa.int64()),
        ("decode_errors", pa.int64()),
        ("last_error", pa.string()),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        pa.field("record_kind", pa.string(), nullable=False),
        ("job_id", pa.string()),
        ("attempt", pa.int32()),
        ("parent_run_id", pa.string()),
        ("spawned_by_run_id", pa.string()),
        ("depth", pa.int32()),
        ("root_run_id", pa.string()),
        ("state", pa.string()),
        ("outcome", pa.string()),
        ("message", pa.string()),
        ("error_type", pa.string()),
        ("exit_code", pa.int32()),
        ("script", pa.string()),
        ("script_sha256", pa.string()),
        ("job", pa.string()),
        ("job_sha256", pa.string()),
        ("policy", pa.string()),
        ("policy_config", pa.string()),
        ("executor", pa.string()),
        ("executor_version", pa.string()),
        ("storage_backend", pa.string()),
        ("dataset", pa.string()),
        ("started_at", _TS),
        ("ended_at", _TS),
        ("duration_ms", pa.int64()),
        ("updated_at", _TS),
        ("event_count", pa.int64()),
        ("events_received", pa.int64()),
        ("events_persisted", pa.int64()),
        ("events_dropped", pa.int64()),
        ("dropped_by_type", _COUNTERS),
        ("events_unflushed", pa.int64()),
        ("event_sink_errors", _COUNTERS),
        ("artifacts_total", pa.int64()),
        ("artifacts_committed", pa.int64()),
        ("artifacts_orphaned", pa.int64()),
        ("artifact_chunks", pa.int64()),
        ("artifact_bytes", pa.int64()),
        ("orphaned_artifact_ids", pa.list_(pa.string())),
        ("sidecar_files", pa.list_(_SIDECAR)),
        ("proxy_pool", pa.string()),
        ("proxy_used", _PROXY),
        ("proxy_rotations", pa.int64()),
        ("proxy_endpoints", pa.list_(_PROXY)),
        ("ipc", _IPC),
        ("stderr_tail", pa.string()),
        ("stop_reason", pa.string()),
        ("children_total", pa.int64()),
        ("children_succeeded", pa.int64()),
        ("children_failed", pa.int64()),
        ("enqueue_received", pa.int64()),
        ("enqueue_deduped", pa.int64()),
        ("enqueue_skipped", pa.int64()),
        ("quarry_version", pa.string()),
        ("contract_version", pa.string()),
    ]
)

OUTBOX_SCHEMA = pa.schema(
    [
        pa.field("record_kind", pa.string(), nullable=False),
        ("notification_id", pa.string()),
        ("state", pa.string()),
        ("adapter", pa.string()),
        ("target", pa.string()),
        ("payload", pa.string()),
        ("attempts", pa.int64()),
        ("last_error", pa.string()),
        ("created_at", _TS),
        ("recorded_at", _TS),
    ]
)

SCHEMAS: Mapping[str, pa.Schema] = {
    "events": EVENTS_SCHEMA,
    "chunks": CHUNKS_SCHEMA,
    "metrics": METRICS_SCHEMA,
    "runs": RUNS_SCHEMA,
    "outbox": OUTBOX_SCHEMA,
}

#: The record kind each run-level table stores.
RECORD_KINDS: Mapping[str, str] = {"metrics": "metrics", "runs": "run", "outbox": "outbox"}

#: Columns holding compact JSON text.
JSON_COLUMNS: Mapping[str, frozenset[str]] = {
    "events": frozenset({"payload"}),
    "chunks": frozenset(),
    "metrics": frozenset(),
    "runs": frozenset({"job", "policy_config"}),
    "outbox": frozenset({"payload"}),
}

#: The timestamp column that gives a file's ``min_ts``/``max_ts`` (none for chunks).
TS_COLUMNS: Mapping[str, str] = {"events": "ts", "metrics": "ts", "runs": "updated_at", "outbox": "recorded_at"}

#: Fields each run-level table requires in :func:`prepare_record`.
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "metrics": ("ts", "policy", "executor", "storage_backend"),
    "runs": ("updated_at",),
    "outbox": ("notification_id", "state", "recorded_at"),
}

_ZSTD_LEVEL = 3

#: Below this many rows a Parquet file is written without dictionary pages: for the one-row files of ``strict``
#: they cost more than the data (the values and the schema are the same; only the page encoding differs).
DICTIONARY_MIN_ROWS = 64

#: From :data:`DICTIONARY_MIN_ROWS` rows on, only these columns of a table get dictionary pages: the text columns
#: whose values repeat (a run's contract version, event types, lineage, policy). Tables not named here use
#: pyarrow's default (every column). Dictionary-encoding the unique values of the rest (event ids, payloads,
#: ``seq``, a chunk's bytes) cost CPU only to be abandoned or stored beside the values: 10 000 items wrote 311
#: instead of 260 KB, in 0.79 instead of 0.67 µs an item (zstd compresses the plain values well).
DICTIONARY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "events": (
        "record_kind",
        "contract_version",
        "type",
        "job_id",
        "parent_run_id",
        "spawned_by_run_id",
        "policy",
        "content_type",
    ),
    "chunks": ("record_kind", "artifact_id", "checksum_algo"),
}

#: Up to this many rows a Parquet file is written uncompressed whatever the configured compression: a run's
#: one-row files (its two ``runs`` records, its ``metrics`` record, a lone event) come out smaller without it
#: (a compressed chunk of one value carries a frame header) and cost 40 % less CPU to write (a ``runs`` record:
#: 1.7 → 1.0 ms; each column chunk sets up its own compressor). Parquet names the codec per column chunk, so
#: readers need nothing from the manifest's ``compressor``.
UNCOMPRESSED_MAX_ROWS = 1


class ColumnarRows(Protocol):
    """A sequence of rows of one table that can also build its Arrow table column-wise."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Any: ...

    def to_arrow(self) -> pa.Table:
        """The rows as a table of the table's schema (the same values ``pa.Table.from_pylist`` would give)."""
        ...

    def ts_range(self) -> tuple[datetime | None, datetime | None]:
        """The smallest and largest value of the table's timestamp column (``None`` when there is none)."""
        ...


def is_columnar(rows: object) -> TypeGuard[ColumnarRows]:
    """Whether ``rows`` builds its own Arrow table (a cheap check: no ``runtime_checkable`` protocol walk)."""
    return callable(getattr(rows, "to_arrow", None)) and callable(getattr(rows, "ts_range", None))


# --------------------------------------------------------------------------- timestamps


def parse_ts(value: str | datetime) -> datetime:
    """Parse an RFC 3339 timestamp (an offset is required) into a UTC ``datetime``."""
    if type(value) is str:
        return _parse_ts_text(value)
    return _parse_ts(value)


def _parse_ts(value: str | datetime) -> datetime:
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("z", "Z"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp has no UTC offset: {value!r}")
    return dt.astimezone(UTC)


#: Events of one millisecond share their ``ts`` text: parse each text once (datetimes are immutable).
_parse_ts_text = functools.lru_cache(maxsize=4096)(_parse_ts)


def format_ts(value: datetime, *, digits: int = 3) -> str:
    """RFC 3339 UTC with ``digits`` fractional digits (3 = ms, 6 = µs) and ``Z``."""
    dt = value.astimezone(UTC)
    frac = f"{dt.microsecond:06d}"[:digits]
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if digits else "") + "Z"


# --------------------------------------------------------------------------- record preparation


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _as_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if attrs.has(type(value)):
        return attrs.asdict(value)
    raise ValueError(f"{what}: expected a mapping, got {type(value).__name__}")


#: ``convert(value, what) -> column value`` for one Arrow type; ``what`` names the field in error messages.
Converter = Callable[[Any, str], Any]


def _to_timestamp(value: Any, what: str) -> Any:
    if value is None:
        return None
    try:
        return parse_ts(value)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{what}: not an RFC 3339 timestamp: {value!r}") from exc


def _to_counter_map(value: Any, what: str) -> Any:
    if value is None:
        return None
    return {str(k): int(v) for k, v in _as_mapping(value, what).items()}


def _to_int(value: Any, what: str) -> Any:
    if value is None or (type(value) is int):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: expected an integer, got {type(value).__name__}")
    return value


def _to_bool(value: Any, what: str) -> Any:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{what}: expected a boolean, got {type(value).__name__}")
    return value


def _to_bytes(value: Any, what: str) -> Any:
    return None if value is None else bytes(value)


def _to_text(value: Any, what: str) -> Any:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what}: expected text, got {type(value).__name__}")
    return value


def _struct_converter(typ: pa.StructType) -> Converter:
    fields = [(typ.field(i).name, _converter(typ.field(i).type)) for i in range(typ.num_fields)]
    names = {name for name, _ in fields}

    def convert(value: Any, what: str) -> Any:
        if value is None:
            return None
        m = _as_mapping(value, what)
        if not names.issuperset(m):
            raise ValueError(f"{what}: unknown field(s) {', '.join(sorted(set(m) - names))}")
        return {k: conv(m.get(k), f"{what}.{k}") for k, conv in fields}

    return convert


def _list_converter(typ: pa.ListType) -> Converter:
    item = _converter(typ.value_type)

    def convert(value: Any, what: str) -> Any:
        if value is None:
            return None
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
        return [item(v, f"{what}[]") for v in value]

    return convert


@functools.cache
def _converter(typ: pa.DataType) -> Converter:
    """The converter of an Arrow type (built once per type: record preparation runs for every run record)."""
    if pa.types.is_timestamp(typ):
        return _to_timestamp
    if pa.types.is_map(typ):
        return _to_counter_map
    if pa.types.is_struct(typ):
        return _struct_converter(typ)
    if pa.types.is_list(typ):
        return _list_converter(typ)
    if pa.types.is_integer(typ):
        return _to_int
    if pa.types.is_boolean(typ):
        return _to_bool
    if pa.types.is_binary(typ):
        return _to_bytes
    return _to_text


@functools.cache
def _record_fields(table: str) -> dict[str, tuple[bool, Converter]]:
    """Field name → (is a JSON column, converter) for one record table."""
    json_cols = JSON_COLUMNS[table]
    return {f.name: (f.name in json_cols, _converter(f.type)) for f in SCHEMAS[table]}


def prepare_record(table: str, record: Mapping[str, Any], partition: Mapping[str, str]) -> dict[str, Any]:
    """Turn a runtime record for ``runs``, ``metrics`` or ``outbox`` into a row of that table's schema.

    Partition columns in ``record`` must equal ``partition`` and are dropped; timestamps may be RFC 3339
    strings; JSON columns may be text or any JSON value. Unknown keys, type mismatches, a wrong
    ``record_kind`` and missing required fields raise ``ValueError``.
    """
    if table not in RECORD_KINDS:
        raise ValueError(f"table {table!r} does not take records (valid: {', '.join(sorted(RECORD_KINDS))})")
    kind = RECORD_KINDS[table]
    fields = _record_fields(table)
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key in PARTITION_KEYS:
            if value is not None and str(value) != partition[key]:
                raise ValueError(f"{table} record: {key} {value!r} does not match the run's {partition[key]!r}")
            continue
        if key == "record_kind":
            if value not in (None, kind):
                raise ValueError(f"{table} record: record_kind must be {kind!r}, got {value!r}")
            continue
        spec = fields.get(key)
        if spec is None:
            raise ValueError(f"{table} record: unknown field {key!r}")
        is_json, convert = spec
        if is_json and value is not None:
            row[key] = _json_text(value)
        else:
            row[key] = convert(value, f"{table} record: {key}")
    for name in _REQUIRED.get(table, ()):
        if row.get(name) is None:
            raise ValueError(f"{table} record missing required field: {name}")
    row["record_kind"] = kind
    return row


# --------------------------------------------------------------------------- encoding


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def encode_rows(table: str, rows: Sequence[Mapping[str, Any]], codec: str, compression: str) -> bytes:
    """Encode rows of ``table`` as one data file (Parquet or JSONL, compressed as asked)."""
    schema = SCHEMAS[table]
    if codec == "parquet":
        arrow = rows.to_arrow() if is_columnar(rows) else pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
        sink = pa.BufferOutputStream()
        if arrow.num_rows <= UNCOMPRESSED_MAX_ROWS:
            compression = "none"
        kwargs: dict[str, Any] = {"compression": compression}
        if compression == "zstd":
            kwargs["compression_level"] = _ZSTD_LEVEL
        if arrow.num_rows < DICTIONARY_MIN_ROWS:
            kwargs["use_dictionary"] = False
        elif table in DICTIONARY_COLUMNS:
            kwargs["use_dictionary"] = list(DICTIONARY_COLUMNS[table])
        pq.write_table(arrow, sink, **kwargs)
        return bytes(sink.getvalue().to_pybytes())
    if codec != "jsonl":
        raise ValueError(f"unknown codec {codec!r}")
    names = schema.names
    lines = []
    for r in rows:
        extra = set(r) - set(names)
        if extra:
            raise ValueError(f"{table} row: unknown field(s) {', '.join(sorted(extra))}")
        obj = {n: _jsonable(r.get(n)) for n in names}
        lines.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
    raw = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    if compression == "gzip":
        return gzip.compress(raw, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(raw)
    return raw


# --------------------------------------------------------------------------- decoding


def _from_json(value: Any, typ: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_timestamp(typ):
        return parse_ts(value)
    if pa.types.is_binary(typ):
        return base64.b64decode(value)
    if pa.types.is_struct(typ):
        return {
            typ.field(i).name: _from_json(value.get(typ.field(i).name), typ.field(i).type)
            for i in range(typ.num_fields)
        }
    if pa.types.is_list(typ):
        return [_from_json(v, typ.value_type) for v in value]
    return value


def _conform(arrow: pa.Table, schema: pa.Schema) -> pa.Table:
    """Order columns as ``schema``, add missing ones as nulls, cast known ones; newer extra columns stay."""
    columns: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for field in schema:
        if field.name in arrow.column_names:
            col = arrow.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
            columns.append(col)
        else:
            columns.append(pa.nulls(arrow.num_rows, type=field.type))
        fields.append(pa.field(field.name, field.type))
    for name in arrow.column_names:
        if name not in schema.names:
            columns.append(arrow.column(name))
            fields.append(arrow.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def decode_file(data: bytes, ext: str, table: str, *, columns: Sequence[str] | None = None) -> pa.Table:
    """Decode one data file's bytes (by extension) into a table conforming to ``table``'s schema.

    ``columns`` limits the result to those data columns (Parquet then reads only them).
    """
    schema = SCHEMAS[table]
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns if schema.get_field_index(c) >= 0])
    if ext == "parquet":
        pf = pq.ParquetFile(io.BytesIO(data))
        present = [c for c in schema.names if c in pf.schema_arrow.names] if columns is not None else None
        arrow = _conform(pf.read(columns=present), schema)
        return arrow.select(schema.names) if columns is not None else arrow
    if ext == "jsonl.gz":
        data = gzip.decompress(data)
    elif ext == "jsonl.zst":
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    elif ext != "jsonl":
        raise ValueError(f"unknown data file extension {ext!r}")
    rows = []
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        rows.append({f.name: _from_json(obj.get(f.name), f.type) for f in schema})
    loose = pa.schema([pa.field(f.name, f.type) for f in schema])
    return pa.Table.from_pylist(rows, schema=loose)
