"""The Quarry storage backend ``lode`` (``quarry_core.interfaces.StorageBackend`` / ``RunStorage``).

The runtime builds one :class:`LodeBackend` per process from a ``StorageConfig`` and opens one
:class:`LodeRunStorage` per run. Every write is one snapshot (lode.md §5); blocking fsspec/pyarrow work
runs in worker threads, and every storage failure surfaces as a classified ``StorageError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
import pyarrow as pa

from quarry_core.interfaces import RunPartition, SidecarFile, StorageConfig
from quarry_core.protocol.codec import speedups
from quarry_lode.codecs import EVENTS_SCHEMA, parse_ts, prepare_record
from quarry_lode.dataset import CommitResult, Dataset, Groups, root_url
from quarry_lode.errors import classify
from quarry_lode.escaping import escape_value
from quarry_lode.layout import TABLE_EVENT_TYPES, Partition
from quarry_lode.pointer import fs_protocol, pointer_store_for
from quarry_lode.settings import resolve_location
from quarry_lode.sidecar import SidecarWriter
from quarry_lode.snapshot import is_snapshot_id, new_snapshot_id

if TYPE_CHECKING:
    from quarry_core.protocol.frames import ArtifactChunk, Event

__all__ = [
    "RECORD_TABLES",
    "WRITER",
    "EventRows",
    "LodeBackend",
    "LodeRunStorage",
    "event_row",
    "make_backend",
    "shared_backend",
]

#: ``metadata.writer`` of every manifest Quarry writes.
WRITER = "quarry-lode/0.1.0"
#: Tables ``write_records`` accepts.
RECORD_TABLES: tuple[str, ...] = ("runs", "metrics", "outbox")
#: how long closing run storage waits for the deferred pointer (the pointer lock alone may take 10 s)
POINTER_FLUSH_TIMEOUT = 15.0


#: what orjson refuses (integers beyond 64 bits, keys that are not text) is encoded the standard library's way
_FALLBACK = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _json(value: Any) -> str:
    """The ``payload`` column's text: compact JSON, non-ASCII as is (``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)``, by orjson at a seventh of its cost)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _FALLBACK.encode(value)


def _json_texts(values: list[Any]) -> list[str]:
    """:func:`_json` of each value, without a call per value when orjson takes them all."""
    dumps = orjson.dumps
    try:
        return [dumps(v).decode() for v in values]
    except orjson.JSONEncodeError:
        return [_json(v) for v in values]


#: cuts ``orjson.dumps`` of a list into its elements' texts as an Arrow string array's buffers: quarry-speedups'
#: ``json_array_split`` when installed
_split_json_array: Any = getattr(speedups(), "json_array_split", None)


def _payload_column(payloads: list[Any]) -> pa.Array:
    """The ``payload`` column: :func:`_json` of each payload. With quarry-speedups, orjson writes the whole list
    at once and its text is cut into the elements' (the same texts: orjson writes a list's elements as it writes
    each alone), without a ``str`` per row; anything orjson refuses takes the row-by-row way."""
    if _split_json_array is not None and payloads:
        try:
            text = orjson.dumps(payloads)
        except orjson.JSONEncodeError:
            text = None
        parts = None if text is None else _split_json_array(text, len(payloads))
        if parts is not None:
            offsets, values = parts
            return pa.StringArray.from_buffers(len(payloads), pa.py_buffer(offsets), pa.py_buffer(values))
    return pa.array(_json_texts(payloads), pa.string())


def _text_column(values: list[str | None]) -> Any:
    """A text column: one value repeated (a run's contract version, an event type, absent lineage) as a
    repeated scalar, which costs nothing per row; else the list itself (``values`` is never empty)."""
    first = values[0]
    if values.count(first) != len(values):  # equal texts are mostly the very same object (the decoder's)
        return values
    if first is None:
        return pa.nulls(len(values), pa.string())
    return pa.repeat(pa.scalar(first, pa.string()), len(values))


def event_row(event: Event, policy: str) -> dict[str, Any]:
    """The ``events`` row of one event (``artifact`` events become ``artifact_event`` rows)."""
    row: dict[str, Any] = {
        "record_kind": "event",
        "contract_version": event.contract_version,
        "event_id": event.event_id,
        "seq": event.seq,
        "type": event.type,
        "ts": parse_ts(event.ts),
        "payload": _json(event.payload),
        "attempt": event.attempt,
        "job_id": event.job_id,
        "parent_run_id": event.parent_run_id,
        "spawned_by_run_id": event.spawned_by_run_id,
        "depth": event.depth,
        "policy": policy,
        "artifact_id": None,
        "name": None,
        "content_type": None,
        "size_bytes": None,
    }
    if event.type == "artifact":
        p = event.payload
        size = p.get("size_bytes")
        row.update(
            record_kind="artifact_event",
            artifact_id=p.get("artifact_id"),
            name=p.get("name"),
            content_type=p.get("content_type"),
            size_bytes=int(size) if isinstance(size, int) and not isinstance(size, bool) else None,
        )
    return row


_TYPE = attrgetter("type")
_RUN_ID = attrgetter("run_id")
_CV = attrgetter("contract_version")
_EVENT_ID = attrgetter("event_id")
_SEQ = attrgetter("seq")
_PAYLOAD = attrgetter("payload")
_ATTEMPT = attrgetter("attempt")
_JOB_ID = attrgetter("job_id")
_PARENT = attrgetter("parent_run_id")
_SPAWNED = attrgetter("spawned_by_run_id")
_DEPTH = attrgetter("depth")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_EVENT_KIND = pa.scalar("event", pa.string())


def _artifact_size(size: Any) -> int | None:
    return int(size) if isinstance(size, int) and not isinstance(size, bool) else None


class EventRows(Sequence[dict[str, Any]]):
    """The ``events`` rows of a batch of events (:func:`event_row` of each), built column-wise for Parquet.

    A :class:`~quarry_lode.codecs.ColumnarRows`: indexing or iterating gives the row dicts (for JSONL); Parquet
    takes :meth:`to_arrow`, which fills one Python list per column and converts each once.
    """

    __slots__ = ("_events", "_policy", "_ts")

    def __init__(self, events: Sequence[Event], policy: str) -> None:
        self._events = events
        self._policy = policy
        self._ts: tuple[list[int], dict[str, datetime]] | None = None

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [event_row(e, self._policy) for e in self._events[index]]
        return event_row(self._events[index], self._policy)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        policy = self._policy
        return (event_row(e, policy) for e in self._events)

    def _timestamps(self) -> tuple[list[int], dict[str, datetime]]:
        """The ``ts`` column as milliseconds since the epoch, floored (what pyarrow makes of each ``parse_ts``
        datetime, without a datetime per row: converting those cost ten times more), and each distinct text's
        datetime. Events of one millisecond share their text, so each text is parsed once."""
        if self._ts is None:
            column: list[int] = []
            parsed: dict[str, datetime] = {}
            last: str | None = None
            last_ms = 0
            for e in self._events:
                text = e.ts
                if text != last:
                    last = text
                    dt = parsed.get(text)
                    if dt is None:
                        dt = parsed[text] = parse_ts(text)
                    last_ms = (dt - _EPOCH) // _MS
                column.append(last_ms)
            self._ts = column, parsed
        return self._ts

    def ts_range(self) -> tuple[datetime | None, datetime | None]:
        parsed = self._timestamps()[1].values()
        return (min(parsed), max(parsed)) if parsed else (None, None)

    def to_arrow(self) -> pa.Table:
        evs = self._events
        n = len(evs)
        artifacts = [e.payload for e in evs if e.type == "artifact"]
        if not artifacts:
            kinds: Any = pa.repeat(_EVENT_KIND, n)
            art: list[Any] = [[None] * n] * 4
        else:
            kinds = ["artifact_event" if e.type == "artifact" else "event" for e in evs]
            payloads = [e.payload if e.type == "artifact" else None for e in evs]
            art = [
                [p.get("artifact_id") if p is not None else None for p in payloads],
                [p.get("name") if p is not None else None for p in payloads],
                [p.get("content_type") if p is not None else None for p in payloads],
                [_artifact_size(p.get("size_bytes")) if p is not None else None for p in payloads],
            ]
        if not n:
            return EVENTS_SCHEMA.empty_table()
        columns: list[Any] = [
            kinds,
            _text_column(list(map(_CV, evs))),
            list(map(_EVENT_ID, evs)),
            list(map(_SEQ, evs)),
            _text_column(list(map(_TYPE, evs))),
            self._timestamps()[0],
            _payload_column(list(map(_PAYLOAD, evs))),
            list(map(_ATTEMPT, evs)),
            _text_column(list(map(_JOB_ID, evs))),
            _text_column(list(map(_PARENT, evs))),
            _text_column(list(map(_SPAWNED, evs))),
            list(map(_DEPTH, evs)),
            pa.repeat(pa.scalar(self._policy, pa.string()), n),
            *art,
        ]
        arrays = [
            col if isinstance(col, pa.Array) else pa.array(col, type=field.type)
            for col, field in zip(columns, EVENTS_SCHEMA, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=EVENTS_SCHEMA)


def _in_seq_order(events: list[Event]) -> list[Event]:
    """``events`` sorted by ``seq`` (they usually arrive sorted: then as they are)."""
    prev = 0
    for e in events:
        if e.seq < prev:
            return sorted(events, key=lambda e: e.seq)
        prev = e.seq
    return events


class LodeRunStorage:
    """Storage bound to one run's partition (``quarry_core.interfaces.RunStorage``)."""

    def __init__(self, dataset: Dataset, partition: RunPartition, *, writer: str = WRITER) -> None:
        for key in ("source", "category", "day", "run_id"):
            escape_value(getattr(partition, key), what=key)
        Partition(partition.source, partition.category, partition.day, partition.run_id, "x").relpath()
        self.dataset = dataset
        self.partition = partition
        self._writer = writer
        self._offsets: dict[str, int] = {}
        self._sidecars = SidecarWriter(dataset, partition)
        self._retries = 0
        self._retries_lock = threading.Lock()
        self._foreign_ids: dict[str, str] = {}
        self._closed = False

    # ------------------------------------------------------------------ helpers

    def _part(self, event_type: str) -> Partition:
        p = self.partition
        return Partition(p.source, p.category, p.day, p.run_id, event_type)

    def _snapshot_id(self, given: str | None) -> str | None:
        """Lode ids pass through; any other token maps to one stable Lode id for this run (retries)."""
        if given is None or is_snapshot_id(given):
            return given
        if given not in self._foreign_ids:
            self._foreign_ids[given] = new_snapshot_id()
        return self._foreign_ids[given]

    def _metadata(self, pending: list[dict[str, Any]] | None) -> dict[str, Any]:
        md: dict[str, Any] = {"run_id": self.partition.run_id, "writer": self._writer}
        if pending:
            md["sidecar_files"] = pending
        return md

    async def _commit(
        self, groups: Groups, *, with_sidecars: bool, snapshot_id: str | None
    ) -> tuple[CommitResult | None, list[dict[str, Any]]]:
        if self._closed:
            raise RuntimeError("run storage is closed")
        pending = self._sidecars.pending() if with_sidecars else []
        result = await asyncio.to_thread(
            self.dataset.commit,
            groups,
            metadata=self._metadata(pending),
            snapshot_id=snapshot_id,
            on_pointer=self._count_retries,
        )
        if result is not None:
            self._count_retries(result.retries)
            if result.created and pending:
                self._sidecars.clear(pending)
        return result, pending

    # ------------------------------------------------------------------ RunStorage

    async def write_events(self, events: Sequence[Event], *, policy: str, snapshot_id: str | None = None) -> str | None:
        """Write one batch of events as one snapshot (one file per ``event_type``, rows in seq order)."""
        if not events:
            return None
        run_id = self.partition.run_id
        types = set(map(_TYPE, events))
        if len(types) == 1 and set(map(_RUN_ID, events)) == {run_id}:  # the common batch, checked in C
            by_type: dict[str, list[Event]] = {types.pop(): list(events)}
        else:
            by_type = defaultdict(list)
            for event in events:
                if event.run_id != run_id:
                    raise ValueError(f"event {event.event_id} belongs to run {event.run_id!r}, not {run_id!r}")
                by_type[event.type].append(event)
        groups: dict[tuple[str, Partition], Sequence[dict[str, Any]]] = {
            ("events", self._part(etype)): EventRows(_in_seq_order(evs), policy) for etype, evs in by_type.items()
        }
        result, _ = await self._commit(groups, with_sidecars=True, snapshot_id=self._snapshot_id(snapshot_id))
        return result.snapshot_id if result else None

    async def write_chunks(self, chunks: Sequence[ArtifactChunk], *, snapshot_id: str | None = None) -> str | None:
        """Write artifact chunks as one snapshot; offsets advance only after a successful commit."""
        if not chunks:
            return None
        offsets = dict(self._offsets)
        rows: list[dict[str, Any]] = []
        for chunk in chunks:
            offset = offsets.get(chunk.artifact_id, 0)
            data = bytes(chunk.data)
            rows.append(
                {
                    "record_kind": "artifact_chunk",
                    "artifact_id": chunk.artifact_id,
                    "seq": chunk.seq,
                    "is_last": chunk.is_last,
                    "offset": offset,
                    "length": len(data),
                    "data": data,
                    "checksum": hashlib.md5(data).hexdigest(),
                    "checksum_algo": "md5",
                }
            )
            offsets[chunk.artifact_id] = offset + len(data)
        groups = {("chunks", self._part(TABLE_EVENT_TYPES["chunks"])): rows}
        result, _ = await self._commit(groups, with_sidecars=False, snapshot_id=self._snapshot_id(snapshot_id))
        self._offsets = offsets
        return result.snapshot_id if result else None

    async def write_records(self, records: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
        """Write run-level records (``runs``, ``metrics``, ``outbox``) in one snapshot.

        Unknown tables or fields raise ``ValueError``; timestamps are RFC 3339 strings.
        """
        groups: dict[tuple[str, Partition], list[dict[str, Any]]] = {}
        for table, rows in records.items():
            if table not in RECORD_TABLES:
                raise ValueError(f"unknown record table {table!r} (valid: {', '.join(RECORD_TABLES)})")
            if not rows:
                continue
            part = self._part(TABLE_EVENT_TYPES[table])
            values = part.values()
            groups[(table, part)] = [prepare_record(table, r, values) for r in rows]
        if not groups:
            return None
        result, _ = await self._commit(groups, with_sidecars=True, snapshot_id=None)
        return result.snapshot_id if result else None

    async def put_file(self, filename: str, content_type: str, data: bytes | BinaryIO) -> SidecarFile:
        """Create-only sidecar write; ``PathExistsError`` (kind ``path_exists``) for a repeated name."""
        if self._closed:
            raise RuntimeError("run storage is closed")
        return await asyncio.to_thread(self._sidecars.put, filename, content_type, data)

    def pending_sidecars(self) -> list[dict[str, Any]]:
        """Sidecar inventory not yet recorded in a snapshot's metadata."""
        return self._sidecars.pending()

    def _count_retries(self, retries: int) -> None:  # on the pointer advancer's thread
        if retries:
            with self._retries_lock:
                self._retries += retries

    @property
    def write_retries(self) -> int:
        """Pointer compare-and-swap retries of this run's commits so far (advances finished by now)."""
        return self._retries

    async def close(self) -> None:
        """Stop accepting writes and wait for the deferred pointer advance of this run's last commit."""
        self._closed = True
        await asyncio.to_thread(self.dataset.flush_pointer, POINTER_FLUSH_TIMEOUT)


class LodeBackend:
    """The ``lode`` storage backend (``quarry_core.interfaces.StorageBackend``)."""

    def __init__(self, config: StorageConfig) -> None:
        from fsspec.core import url_to_fs

        location = resolve_location(config)
        try:
            fs, root = url_to_fs(location.url, **dict(location.storage_options))
        except Exception as exc:
            raise classify(exc, "init", location.url) from exc
        self.config = config
        self.location = location
        self.fs = fs
        self.protocol: str = fs_protocol(fs)
        self.root_url: str = root_url(fs, root)
        self.dataset = Dataset(
            fs,
            root,
            config.dataset,
            codec=config.codec,
            compression=config.compression,
            store=pointer_store_for(fs, conditional_writes=location.conditional_writes),
            defer_pointer=True,
        )

    def open_run(self, partition: RunPartition) -> LodeRunStorage:
        """Storage for one run; ``ValueError`` for partition values that cannot be stored."""
        return LodeRunStorage(self.dataset, partition)

    def events_path(self, partition: RunPartition) -> str:
        """``<root URL>/datasets/<dataset>/events/source=…/category=…/day=…/run_id=…`` (``storage_path``)."""
        part = Partition(partition.source, partition.category, partition.day, partition.run_id, "x").relpath()
        return f"{self.root_url.rstrip('/')}/datasets/{self.dataset.name}/events/{part.rsplit('/', 1)[0]}"

    async def close(self) -> None:
        """Nothing to release (fsspec filesystems are cached by fsspec)."""


def make_backend(config: StorageConfig) -> LodeBackend:
    """A new ``lode`` storage backend."""
    return LodeBackend(config)


_SHARED: dict[str, LodeBackend] = {}
_SHARED_LOCK = threading.Lock()
_MAX_SHARED = 32


def shared_backend(config: StorageConfig) -> LodeBackend:
    """Factory of the ``lode`` storage backend plugin: one backend per storage location and dataset settings.

    Every run of a process (a crawl's children, a Temporal worker's activities) that writes to the same dataset
    shares one :class:`Dataset`, so its deferred pointer advances are coalesced across runs and the local store's
    directory cache is warm. Backends hold no per-run state (``open_run`` makes that).
    """
    location = resolve_location(config)
    key = json.dumps(
        [
            location.url,
            location.conditional_writes,
            config.dataset,
            config.codec,
            config.compression,
            location.storage_options,
        ],
        sort_keys=True,
        default=repr,
    )
    with _SHARED_LOCK:
        backend = _SHARED.get(key)
        if backend is None:
            backend = LodeBackend(config)
            if len(_SHARED) >= _MAX_SHARED:
                _SHARED.clear()
            _SHARED[key] = backend
        return backend
