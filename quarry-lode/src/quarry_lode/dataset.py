"""A writable Lode dataset and the commit protocol of lode.md §5.

``Dataset.write(groups, *, metadata, snapshot_id=None)`` writes one snapshot:

1. nothing to write → ``None``;
2. use or create the id; if its manifest exists, return it (already committed, idempotent retry);
3. write one data file per (table, partition), replacing a leftover of an uncommitted attempt;
4. read the pointer (``parent_snapshot_id``), then create the manifest create-only; "already exists" means
   an earlier attempt committed, which is success;
5. advance the pointer; a failure there is only a warning, the snapshot stays committed.

With ``defer_pointer=True`` (what Quarry's storage backend uses) step 5 runs on a :class:`PointerAdvancer`
thread after ``commit`` returns, coalescing the ids of commits made meanwhile; :meth:`Dataset.flush_pointer`
waits for it (run storage does on close, every live dataset at interpreter exit).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from loguru import logger

from quarry_lode.codecs import TS_COLUMNS, encode_rows, format_ts, is_columnar
from quarry_lode.errors import classify
from quarry_lode.layout import Layout, Partition, data_extension, validate_dataset_name
from quarry_lode.manifest import Manifest, ManifestFile
from quarry_lode.pointer import PointerAdvancer, PointerStore, fs_protocol, pointer_store_for
from quarry_lode.settings import validate_codec
from quarry_lode.snapshot import is_snapshot_id, new_snapshot_id

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "CommitResult",
    "Dataset",
    "Groups",
    "display_path",
    "root_url",
]

#: (table, partition) → rows of that table's schema.
Groups = Mapping[tuple[str, Partition], Sequence[Mapping[str, Any]]]


@attrs.frozen
class CommitResult:
    """Outcome of one :meth:`Dataset.commit`.

    ``created`` is ``False`` when the snapshot was already committed (by an earlier attempt);
    ``retries`` counts pointer compare-and-swap retries; ``pointer_advanced`` whether we moved ``_latest``.
    """

    snapshot_id: str
    created: bool
    retries: int = 0
    pointer_advanced: bool = False
    manifest: Manifest | None = None


def display_path(fs: AbstractFileSystem, path: str) -> str:
    """A path as shown in errors: plain for local disks, ``<protocol>://<path>`` elsewhere."""
    protocol = fs_protocol(fs)
    if protocol == "file":
        return path
    return f"{protocol}://{path.lstrip('/')}"


def root_url(fs: AbstractFileSystem, path: str) -> str:
    """A URL for a root path: ``file:///abs/path`` for local disks, ``<protocol>://<path>`` elsewhere."""
    protocol = fs_protocol(fs)
    if protocol == "file":
        return "file://" + path
    return display_path(fs, path)


class Dataset:
    """A named dataset under a storage root, for writing snapshots.

    ``fs`` is an fsspec filesystem and ``root`` a path in its own form (what ``url_to_fs`` returns). Safe to
    use from several threads; the commit protocol makes concurrent writers (threads or processes) safe.
    ``defer_pointer`` moves step 5 (the advisory pointer) off the commit path (module docstring).
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        root: str,
        name: str = "quarry",
        *,
        codec: str = "parquet",
        compression: str | None = None,
        store: PointerStore | None = None,
        defer_pointer: bool = False,
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self.name = validate_dataset_name(name)
        self.codec, self.compression = validate_codec(codec, compression)
        self.layout = Layout(self.root, self.name)
        self._store = store if store is not None else pointer_store_for(fs)
        self.protocol = fs_protocol(fs)
        self._lock = threading.Lock()
        self._retries = 0
        self._advancer = (
            PointerAdvancer(self._store, self.layout.pointer_path, display=self.display(self.layout.pointer_path))
            if defer_pointer
            else None
        )

    @property
    def store(self) -> PointerStore:
        """The filesystem's atomic primitives (replaceable, e.g. by a test that injects conflicts)."""
        return self._store

    @store.setter
    def store(self, store: PointerStore) -> None:
        self._store = store
        if self._advancer is not None:
            self._advancer.store = store

    @classmethod
    def open(
        cls,
        url: str,
        name: str = "quarry",
        *,
        storage_options: Mapping[str, Any] | None = None,
        codec: str = "parquet",
        compression: str | None = None,
    ) -> Dataset:
        """Open ``<url>/datasets/<name>`` for writing (``url`` may be a plain local directory)."""
        from fsspec.core import url_to_fs

        options = dict(storage_options or {})
        conditional = str(options.pop("conditional_writes", "true")).lower() not in ("false", "0", "no")
        fs, root = url_to_fs(url, **options)
        return cls(
            fs,
            root,
            name,
            codec=codec,
            compression=compression,
            store=pointer_store_for(fs, conditional_writes=conditional),
        )

    @property
    def write_retries(self) -> int:
        """Pointer compare-and-swap retries of every commit through this object (finished advances)."""
        return self._retries + (self._advancer.retries if self._advancer is not None else 0)

    def flush_pointer(self, timeout: float | None = None) -> bool:
        """Wait until deferred pointer advances cover every commit so far; ``False`` on timeout."""
        return self._advancer.flush(timeout) if self._advancer is not None else True

    def display(self, path: str) -> str:
        """``path`` as shown in error messages."""
        return display_path(self.fs, path)

    def manifest_exists(self, snapshot_id: str) -> bool:
        """Whether ``snapshot_id`` is committed."""
        path = self.layout.manifest_path(snapshot_id)
        try:
            if self.protocol == "file":
                return os.path.lexists(path)  # LocalFileSystem.exists (an lstat), minus fsspec's path handling
            self.fs.invalidate_cache(path)  # fsspec instances (and their listing caches) are shared
            return bool(self.fs.exists(path))
        except Exception as exc:
            raise classify(exc, "read", self.display(path)) from exc

    def write(self, groups: Groups, *, metadata: Mapping[str, Any], snapshot_id: str | None = None) -> str | None:
        """Commit ``groups`` as one snapshot; return its id, or ``None`` when there is nothing to write."""
        result = self.commit(groups, metadata=metadata, snapshot_id=snapshot_id)
        return result.snapshot_id if result is not None else None

    def commit(
        self,
        groups: Groups,
        *,
        metadata: Mapping[str, Any],
        snapshot_id: str | None = None,
        on_pointer: Callable[[int], None] | None = None,
    ) -> CommitResult | None:
        """Like :meth:`write`, returning the details. Failures raise classified ``StorageError``s.

        With a deferred pointer the result has ``pointer_advanced=False`` and ``retries=0``; ``on_pointer`` is
        called (on the advancer's thread) with the retries once an advance covers this snapshot.
        """
        todo = {key: rows for key, rows in groups.items() if rows}
        if not todo:
            return None
        sid = snapshot_id if snapshot_id is not None else new_snapshot_id()
        if not is_snapshot_id(sid):
            raise ValueError(f"not a snapshot id: {sid!r} (expected <20-digit ns>-<8 hex>)")
        if self.manifest_exists(sid):
            return CommitResult(sid, created=False)

        ext = data_extension(self.codec, self.compression)
        files: list[ManifestFile] = []
        for table, partition in sorted(todo, key=lambda k: (k[0], k[1].relpath())):
            rows = todo[(table, partition)]
            relpath = self.layout.data_relpath(table, partition, sid, ext)
            path = self.layout.path(relpath)
            data = encode_rows(table, rows, self.codec, self.compression)
            try:
                self.store.put(path, data)
            except Exception as exc:
                raise classify(exc, "write", self.display(path)) from exc
            min_ts, max_ts = _ts_range(table, rows)
            files.append(
                ManifestFile(
                    path=relpath,
                    table=table,
                    partition=partition.values(),
                    row_count=len(rows),
                    size_bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    min_ts=min_ts,
                    max_ts=max_ts,
                )
            )

        pointer = self.layout.pointer_path
        try:
            parent = self.store.read_pointer(pointer)
        except Exception as exc:  # informative only
            logger.debug("reading {} failed: {}", pointer, exc)
            parent = None
        if self._advancer is not None:  # the pointer may lag behind our own newest commit
            latest = self._advancer.latest
            if latest is not None and (parent is None or latest > parent):
                parent = latest
        manifest = Manifest(
            dataset_id=self.name,
            snapshot_id=sid,
            parent_snapshot_id=parent,
            created_at=format_ts(datetime.now(UTC), digits=6),
            codec=self.codec,
            compressor=self.compression,
            files=files,
            metadata=dict(metadata),
        )
        mpath = self.layout.manifest_path(sid)
        try:
            created = self.store.create_only(mpath, manifest.to_bytes())
        except Exception as exc:
            raise classify(exc, "write", self.display(mpath)) from exc
        if not created:
            return CommitResult(sid, created=False)
        if self._advancer is not None:
            self._advancer.request(sid, on_pointer)
            return CommitResult(sid, created=True, manifest=manifest)

        retries = 0
        advanced = False
        try:
            res = self.store.advance(pointer, sid)
            retries, advanced = res.retries, res.advanced
        except Exception as exc:
            err = classify(exc, "write", self.display(pointer), precondition="conflict")
            logger.warning("Warning: latest pointer not advanced to {}: {}", sid, err)
        if retries:
            with self._lock:
                self._retries += retries
        return CommitResult(sid, created=True, retries=retries, pointer_advanced=advanced, manifest=manifest)


def _ts_range(table: str, rows: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    column = TS_COLUMNS.get(table)
    if column is None:
        return None, None
    if is_columnar(rows):
        low, high = rows.ts_range()
        return (format_ts(low), format_ts(high)) if low is not None and high is not None else (None, None)
    values = [r[column] for r in rows if isinstance(r.get(column), datetime)]
    if not values:
        return None, None
    return format_ts(min(values)), format_ts(max(values))
