"""Reading Lode datasets (lode.md §9, §11).

``open_dataset(root)`` returns a :class:`LodeDataset`. Reads see only committed snapshots by default: a
``part-<id>.<ext>`` file counts iff ``_snapshots/<date of id>/<id>.json`` exists, checked per id (cached), so
no full manifest listing is needed. Filters compare whole unescaped values and prune directories first;
partition columns come back as strings; rows come in commit order (snapshot id, file, row).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from quarry_core.interfaces import SidecarFile, StorageConfig
from quarry_lode.codecs import SCHEMAS, decode_file
from quarry_lode.errors import ArtifactCorrupt, ArtifactNotFound, NoMetricsFound, classify
from quarry_lode.escaping import escape
from quarry_lode.layout import PARTITION_KEYS, Layout, Partition, parse_data_filename, parse_partition
from quarry_lode.manifest import Manifest
from quarry_lode.pointer import fs_protocol, pointer_store_for
from quarry_lode.snapshot import is_snapshot_id

if TYPE_CHECKING:
    import pyarrow.dataset as pads
    from fsspec import AbstractFileSystem

__all__ = [
    "DataFile",
    "LodeDataset",
    "open_configured",
    "open_dataset",
]

_METRICS_REQUIRED = ("ts", "run_id", "policy", "executor", "storage_backend")
_CHUNK_META = ["artifact_id", "seq", "is_last", "offset", "length", "checksum"]


def open_dataset(
    root: str, dataset: str = "quarry", *, storage_options: Mapping[str, Any] | None = None
) -> LodeDataset:
    """Open ``<root>/datasets/<dataset>`` for reading; ``root`` is a local directory or any fsspec URL."""
    from fsspec.core import url_to_fs

    options = {k: v for k, v in dict(storage_options or {}).items() if k != "conditional_writes"}
    fs, path = url_to_fs(root, **options)
    return LodeDataset(fs, path, dataset)


def open_configured(config: StorageConfig) -> LodeDataset:
    """Open the dataset a run's ``StorageConfig`` points at (same path resolution and S3 options as writes)."""
    from quarry_lode.settings import resolve_location

    location = resolve_location(config)
    return open_dataset(location.url, config.dataset, storage_options=location.storage_options)


@attrs.frozen
class DataFile:
    """One data file found under a table: absolute ``path``, its snapshot id, partition and extension."""

    path: str
    table: str
    snapshot_id: str
    partition: Partition
    ext: str


@attrs.frozen
class _ChunkRef:
    file: DataFile
    seq: int
    is_last: bool
    offset: int
    length: int
    checksum: str


class LodeDataset:
    """A dataset opened for reading."""

    def __init__(self, fs: AbstractFileSystem, root: str, name: str = "quarry") -> None:
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self.name = name
        self.layout = Layout(self.root, name)
        self.protocol = fs_protocol(fs)
        self._committed: set[str] = set()

    # ------------------------------------------------------------------ snapshots

    def exists(self) -> bool:
        """Whether the dataset directory exists (holds anything at all)."""
        base = self.layout.base
        try:
            self.fs.invalidate_cache(base)
            return bool(self.fs.exists(base)) and bool(self._ls(base))
        except Exception as exc:
            raise classify(exc, "read", base) from exc

    def is_committed(self, snapshot_id: str) -> bool:
        """Whether the snapshot's manifest exists (positive answers are cached)."""
        if snapshot_id in self._committed:
            return True
        if not is_snapshot_id(snapshot_id):
            return False
        path = self.layout.manifest_path(snapshot_id)
        try:
            if self.protocol != "file":
                self.fs.invalidate_cache(path)  # a cached listing of the day directory may predate the commit
            exists = bool(self.fs.exists(path))
        except Exception as exc:
            raise classify(exc, "read", path) from exc
        if exists:
            self._committed.add(snapshot_id)
        return exists

    def _manifest_paths(self) -> list[str]:
        base = self.layout.snapshots_dir
        try:
            self.fs.invalidate_cache(base)
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise classify(exc, "list", base) from exc
        out = []
        for path in found:
            name = str(path).rsplit("/", 1)[-1]
            if name.endswith(".json") and is_snapshot_id(name[:-5]):
                out.append(str(path))
        return sorted(out, key=lambda p: p.rsplit("/", 1)[-1])

    def snapshots(self, since: str | None = None) -> list[Manifest]:
        """Committed manifests, newest first (descending id); ``since`` keeps only ids greater than it."""
        manifests = []
        for path in reversed(self._manifest_paths()):
            sid = path.rsplit("/", 1)[-1][:-5]
            if since is not None and sid <= since:
                continue
            try:
                manifests.append(Manifest.from_bytes(self.fs.cat_file(path)))
            except Exception as exc:
                raise classify(exc, "read", path) from exc
            self._committed.add(sid)
        return manifests

    def latest_snapshot_id(self) -> str | None:
        """The pointer's snapshot id, else the newest manifest's, else ``None``."""
        try:
            current = pointer_store_for(self.fs).read_pointer(self.layout.pointer_path)
        except Exception:
            current = None
        if current is not None:
            return current
        paths = self._manifest_paths()
        return paths[-1].rsplit("/", 1)[-1][:-5] if paths else None

    # ------------------------------------------------------------------ files and tables

    def _ls(self, path: str) -> list[str]:
        try:
            return [str(p).rstrip("/") for p in self.fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise classify(exc, "list", path) from exc

    def files(self, table: str = "events", *, committed_only: bool = True, **filters: str | None) -> list[DataFile]:
        """Data files of ``table`` matching the partition filters, in commit order."""
        unknown = set(filters) - set(PARTITION_KEYS)
        if unknown:
            raise TypeError(f"unknown partition filter(s): {', '.join(sorted(unknown))}")
        table_dir = self.layout.table_dir(table)
        try:
            self.fs.invalidate_cache(table_dir)
        except Exception:
            pass
        dirs = [table_dir]
        for key in PARTITION_KEYS:
            value = filters.get(key)
            nxt: list[str] = []
            for d in dirs:
                if value is not None:
                    nxt.append(f"{d}/{key}={escape(value)}")
                else:
                    nxt.extend(p for p in self._ls(d) if p.rsplit("/", 1)[-1].startswith(f"{key}="))
            dirs = nxt
        found: list[DataFile] = []
        for d in dirs:
            partition = parse_partition(d[len(table_dir) + 1 :])
            if partition is None:
                continue
            values = partition.values()
            if any(v is not None and values[k] != v for k, v in filters.items()):
                continue
            for path in self._ls(d):
                parsed = parse_data_filename(path.rsplit("/", 1)[-1])
                if parsed is None:
                    continue
                sid, ext = parsed
                if committed_only and not self.is_committed(sid):
                    continue
                found.append(DataFile(path, table, sid, partition, ext))
        found.sort(key=lambda f: (f.snapshot_id, f.path))
        return found

    def _load(self, f: DataFile, columns: Sequence[str] | None = None) -> pa.Table:
        try:
            data = self.fs.cat_file(f.path)
        except Exception as exc:
            raise classify(exc, "read", f.path) from exc
        return decode_file(data, f.ext, f.table, columns=columns)

    @staticmethod
    def _with_partition(arrow: pa.Table, partition: Partition) -> pa.Table:
        for key in PARTITION_KEYS:
            arrow = arrow.append_column(
                pa.field(key, pa.string()), pa.array([getattr(partition, key)] * arrow.num_rows, pa.string())
            )
        return arrow

    @staticmethod
    def _empty(table: str) -> pa.Table:
        fields = [pa.field(f.name, f.type) for f in SCHEMAS[table]]
        fields += [pa.field(k, pa.string()) for k in PARTITION_KEYS]
        return pa.schema(fields).empty_table()

    def read(
        self,
        table: str = "events",
        *,
        source: str | None = None,
        category: str | None = None,
        day: str | None = None,
        run_id: str | None = None,
        event_type: str | None = None,
        columns: Sequence[str] | None = None,
        committed_only: bool = True,
    ) -> pa.Table:
        """Rows of ``table`` (with string partition columns) from committed snapshots, in commit order."""
        filters = {"source": source, "category": category, "day": day, "run_id": run_id, "event_type": event_type}
        parts = list(self._file_tables(table, filters, columns, None, committed_only))
        if not parts:
            empty = self._empty(table)
            return empty.select(list(columns)) if columns is not None else empty
        return pa.concat_tables(parts, promote_options="default")

    def iter_batches(
        self,
        table: str = "events",
        *,
        source: str | None = None,
        category: str | None = None,
        day: str | None = None,
        run_id: str | None = None,
        event_type: str | None = None,
        columns: Sequence[str] | None = None,
        where: pc.Expression | None = None,
        committed_only: bool = True,
    ) -> Iterator[pa.Table]:
        """Like :meth:`read`, one data file at a time (memory bounded by the largest file), in commit order.

        Partition filters prune directories before anything is read; ``columns`` is pushed down to Parquet;
        ``where`` (a ``pyarrow.compute`` expression over data and partition columns, e.g.
        ``pc.field("seq") > 10``) filters each file's rows. Files left without rows are skipped.
        """
        filters = {"source": source, "category": category, "day": day, "run_id": run_id, "event_type": event_type}
        for arrow in self._file_tables(table, filters, columns, where, committed_only):
            if arrow.num_rows:
                yield arrow

    def _file_tables(
        self,
        table: str,
        filters: Mapping[str, str | None],
        columns: Sequence[str] | None,
        where: pc.Expression | None,
        committed_only: bool,
    ) -> Iterator[pa.Table]:
        """One table per matching data file, in commit order: partition columns added, ``where`` applied,
        ``columns`` selected (and pushed down to the file when no ``where`` needs the others)."""
        files = self.files(table, committed_only=committed_only, **filters)
        data_columns = None
        if columns is not None and where is None:  # a filter may need columns the caller did not ask for
            data_columns = [c for c in columns if c not in PARTITION_KEYS]
        for f in files:
            arrow = self._with_partition(self._load(f, data_columns), f.partition)
            if where is not None:
                arrow = arrow.filter(where)
            if columns is not None:
                arrow = arrow.select(list(columns))
            yield arrow

    def to_pyarrow_dataset(self, table: str = "events") -> pads.Dataset:
        """A ``pyarrow.dataset`` over the committed files of ``table`` with a string Hive partitioning."""
        import pyarrow.dataset as pads

        files = self.files(table)
        exts = {f.ext for f in files}
        if len(exts) > 1:
            raise ValueError(f"table {table} mixes codecs ({', '.join(sorted(exts))}); use read()")
        fmt = "json" if exts and next(iter(exts)).startswith("jsonl") else "parquet"
        partitioning = pads.partitioning(pa.schema([(k, pa.string()) for k in PARTITION_KEYS]), flavor="hive")
        return pads.dataset(
            [f.path for f in files],
            filesystem=self.fs,
            format=fmt,
            partitioning=partitioning,
            partition_base_dir=self.layout.table_dir(table),
        )

    # ------------------------------------------------------------------ runs and metrics

    def runs(
        self,
        *,
        source: str | None = None,
        category: str | None = None,
        day: str | None = None,
        run_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest record (by ``updated_at``) of every run matching the partition filters."""
        arrow = self.read("runs", source=source, category=category, day=day, run_id=run_id)
        newest: dict[str, dict[str, Any]] = {}
        for row in arrow.to_pylist(maps_as_pydicts="strict"):
            rid = row["run_id"]
            prev = newest.get(rid)
            if prev is None or _later(row.get("updated_at"), prev.get("updated_at")):
                newest[rid] = row
        return sorted(newest.values(), key=lambda r: (str(r.get("started_at") or ""), r["run_id"]))

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The newest record of one run, or ``None``."""
        found = self.runs(run_id=run_id)
        return found[0] if found else None

    def latest_metrics(self, run_id: str | None = None, source: str | None = None) -> dict[str, Any]:
        """The newest metrics record (by ``ts``) matching the filters; ``NoMetricsFound`` if none."""
        rows = self.read("metrics", run_id=run_id, source=source).to_pylist(maps_as_pydicts="strict")
        best: dict[str, Any] | None = None
        for row in rows:
            for name in _METRICS_REQUIRED:
                if row.get(name) is None:
                    raise ValueError(f"metrics record missing required field: {name}")
            if best is None or row["ts"] >= best["ts"]:
                best = row
        if best is None:
            where = ", ".join(f"{k}={v}" for k, v in (("run_id", run_id), ("source", source)) if v is not None)
            raise NoMetricsFound(f"no metrics found{' for ' + where if where else ''}")
        return best

    # ------------------------------------------------------------------ artifacts

    def _artifact_event(self, run_id: str, artifact_id: str) -> dict[str, Any] | None:
        arrow = self.read("events", run_id=run_id, event_type="artifact")
        mask = pc.and_(pc.equal(arrow["record_kind"], "artifact_event"), pc.equal(arrow["artifact_id"], artifact_id))
        rows = arrow.filter(mask).to_pylist()
        return rows[-1] if rows else None

    def _chunk_refs(self, run_id: str, artifact_id: str | None = None) -> dict[str, list[_ChunkRef]]:
        refs: dict[str, list[_ChunkRef]] = {}
        for f in self.files("chunks", run_id=run_id):
            for row in self._load(f, _CHUNK_META).to_pylist():
                aid = row["artifact_id"]
                if artifact_id is not None and aid != artifact_id:
                    continue
                refs.setdefault(aid, []).append(
                    _ChunkRef(f, row["seq"], bool(row["is_last"]), row["offset"], row["length"], row["checksum"])
                )
        return refs

    def _chain(self, artifact_id: str, refs: list[_ChunkRef], size: int | None) -> list[_ChunkRef]:
        """Validate everything but the data itself; return one ref per seq, in order."""
        bad = f"artifact {artifact_id}"
        by_seq: dict[int, _ChunkRef] = {}
        for ref in refs:
            prev = by_seq.get(ref.seq)
            if prev is None:
                by_seq[ref.seq] = ref
            elif (prev.is_last, prev.offset, prev.length, prev.checksum) != (
                ref.is_last,
                ref.offset,
                ref.length,
                ref.checksum,
            ):
                raise ArtifactCorrupt(f"{bad}: chunk {ref.seq}: duplicate chunks with differing data")
        seqs = sorted(by_seq)
        for expected, seq in enumerate(seqs, start=1):
            if seq != expected:
                raise ArtifactCorrupt(f"{bad}: chunk {expected} missing (seqs must be 1..k contiguous)")
        chain = [by_seq[s] for s in seqs]
        for ref in chain[:-1]:
            if ref.is_last:
                raise ArtifactCorrupt(f"{bad}: chunk {ref.seq} is_last before the final chunk {len(chain)}")
        if chain and not chain[-1].is_last:
            raise ArtifactCorrupt(f"{bad}: final chunk {len(chain)} is not marked is_last")
        total = 0
        for ref in chain:
            if ref.offset != total:
                raise ArtifactCorrupt(f"{bad}: chunk {ref.seq}: offset {ref.offset}, expected {total}")
            total += ref.length
        if size is not None and total != size:
            raise ArtifactCorrupt(f"{bad}: {total} bytes in chunks, commit says size_bytes {size}")
        return chain

    def _chunk_data(self, ref: _ChunkRef, artifact_id: str) -> bytes:
        arrow = self._load(ref.file, ["artifact_id", "seq", "data"])
        mask = pc.and_(pc.equal(arrow["artifact_id"], artifact_id), pc.equal(arrow["seq"], ref.seq))
        rows = arrow.filter(mask)
        data = rows["data"][0].as_py() if rows.num_rows else None
        bad = f"artifact {artifact_id}: chunk {ref.seq}"
        if data is None:
            raise ArtifactCorrupt(f"{bad}: data missing")
        if len(data) != ref.length:
            raise ArtifactCorrupt(f"{bad}: length {ref.length} but {len(data)} bytes of data")
        if hashlib.md5(data).hexdigest() != ref.checksum:
            raise ArtifactCorrupt(f"{bad}: MD5 mismatch")
        return bytes(data)

    def open_artifact(self, run_id: str, artifact_id: str, *, include_orphans: bool = False) -> BinaryIO:
        """A stream over the artifact's bytes, validated as it goes (one chunk in memory at a time).

        ``ArtifactNotFound`` without a committed commit record (unless ``include_orphans`` and chunks
        exist); ``ArtifactCorrupt`` naming the first violation of lode.md §9.
        """
        event = self._artifact_event(run_id, artifact_id)
        if event is None and not include_orphans:
            raise ArtifactNotFound(f"artifact {artifact_id} not found in run {run_id}")
        refs = self._chunk_refs(run_id, artifact_id).get(artifact_id, [])
        if event is None and not refs:
            raise ArtifactNotFound(f"artifact {artifact_id} not found in run {run_id}")
        size = event.get("size_bytes") if event is not None else None
        chain = self._chain(artifact_id, refs, size)
        pieces = (self._chunk_data(ref, artifact_id) for ref in chain)
        return io.BufferedReader(_ChunkStream(pieces))

    def read_artifact(self, run_id: str, artifact_id: str, *, include_orphans: bool = False) -> bytes:
        """The artifact's bytes (see :meth:`open_artifact`)."""
        with self.open_artifact(run_id, artifact_id, include_orphans=include_orphans) as stream:
            return stream.read()

    def orphan_artifacts(self, run_id: str) -> list[str]:
        """Ids of artifacts with committed chunks but no committed commit record, sorted."""
        chunk_ids = set(self._chunk_refs(run_id))
        events = self.read("events", run_id=run_id, event_type="artifact", columns=["record_kind", "artifact_id"])
        committed = {r["artifact_id"] for r in events.to_pylist() if r["record_kind"] == "artifact_event"}
        return sorted(chunk_ids - committed)

    # ------------------------------------------------------------------ sidecars

    def sidecar_files(self, run_id: str) -> list[SidecarFile]:
        """A run's sidecar files: from its final run record, else from manifest metadata."""
        record = self.run(run_id)
        if record is not None and record.get("state") != "running" and record.get("sidecar_files") is not None:
            return [SidecarFile(**entry) for entry in record["sidecar_files"]]
        seen: dict[str, SidecarFile] = {}
        for manifest in reversed(self.snapshots()):  # commit order: the first record of a key wins
            if manifest.metadata.get("run_id") != run_id:
                continue
            for entry in manifest.metadata.get("sidecar_files") or []:
                seen.setdefault(
                    entry["key"],
                    SidecarFile(entry["filename"], entry["content_type"], int(entry["size"]), entry["key"]),
                )
        return list(seen.values())

    def open_sidecar(self, key: str) -> BinaryIO:
        """Open a sidecar by its key (path relative to the storage root) for binary reading."""
        path = f"{self.root.rstrip('/')}/{key.lstrip('/')}"
        try:
            stream: BinaryIO = self.fs.open(path, "rb")
        except Exception as exc:
            raise classify(exc, "read", path) from exc
        return stream


def _later(a: Any, b: Any) -> bool:
    if a is None:
        return False
    return b is None or a >= b


class _ChunkStream(io.RawIOBase):
    """A raw stream over an iterator of byte chunks."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._current = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._pos >= len(self._current):
            try:
                self._current = next(self._pieces)
            except StopIteration:
                return 0
            self._pos = 0
        n = min(len(buffer), len(self._current) - self._pos)
        buffer[:n] = self._current[self._pos : self._pos + n]
        self._pos += n
        if self._pos >= len(self._current):
            self._current, self._pos = b"", 0
        return n
