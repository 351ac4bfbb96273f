"""Orphan clean-up (``quarry lode gc``): find, and on request delete, what no commit record will ever claim.

Lode is append-only; the one exception (lode.md §1, §5) is the data files of a snapshot id that never committed,
i.e. whose manifest ``_snapshots/<date>/<id>.json`` does not exist. They are left behind when a writer dies (or a
write fails) between its data files and its manifest: artifact chunks of a crashed run, a buffered flush that gave
up. Raw Hive readers still see them. Candidates, under ``D = <root>/datasets/<dataset>``:

=============  ==============================================================================================
``uncommitted``  ``D/<table>/<P>/part-<id>.<ext>`` with no manifest for ``<id>``
``temp``         ``.<name>.<12 hex>.tmp`` temporary files of a local writer that died before its rename/link
=============  ==============================================================================================

A candidate must be older than the threshold twice over: by the time in its snapshot id (uncommitted files) and by
its modification time when the store reports one, so a writer that is still running is never touched with a
threshold longer than its longest commit. Committed snapshots, manifests, the pointer and sidecar files are never
candidates; orphaned *artifacts* inside committed snapshots (chunks whose ``artifact_event`` never came) stay too,
because committed files are immutable (read them with ``open_artifact(..., include_orphans=True)``).

:func:`collect_garbage` is a dry run unless ``apply=True``; before deleting the files of a snapshot id it checks
once more that its manifest still does not exist.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from quarry_lode.dataset import display_path
from quarry_lode.errors import classify
from quarry_lode.layout import TABLES, parse_data_filename, parse_partition
from quarry_lode.snapshot import snapshot_datetime

if TYPE_CHECKING:
    from quarry_lode.reader import LodeDataset

__all__ = [
    "GcCandidate",
    "GcReport",
    "collect_garbage",
]

_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


@attrs.frozen
class GcCandidate:
    """One file that may be deleted: ``path`` relative to the dataset directory ``D``."""

    path: str
    reason: str
    table: str | None
    snapshot_id: str | None
    size_bytes: int
    age_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (keys in declared order)."""
        return attrs.asdict(self)


@attrs.frozen
class GcReport:
    """What one clean-up pass found and (with ``applied``) deleted."""

    dataset: str
    older_than_seconds: float
    applied: bool
    candidates: tuple[GcCandidate, ...]
    deleted: tuple[str, ...]
    skipped_recent: int
    skipped_committed: int = 0

    @property
    def candidate_bytes(self) -> int:
        """Bytes held by every candidate."""
        return sum(c.size_bytes for c in self.candidates)

    def to_dict(self) -> dict[str, Any]:
        """``{dataset, older_than_seconds, applied, candidates[], candidate_count, candidate_bytes, deleted_count,
        skipped_recent, skipped_committed}``."""
        return {
            "dataset": self.dataset,
            "older_than_seconds": self.older_than_seconds,
            "applied": self.applied,
            "candidates": [c.to_dict() for c in self.candidates],
            "candidate_count": len(self.candidates),
            "candidate_bytes": self.candidate_bytes,
            "deleted_count": len(self.deleted),
            "skipped_recent": self.skipped_recent,
            "skipped_committed": self.skipped_committed,
        }


def _mtime(info: Mapping[str, Any]) -> float | None:
    """Modification time (epoch seconds) from an fsspec info dict: ``mtime`` (local), ``LastModified`` (S3),
    ``created`` (memory); ``None`` when the store reports none."""
    for key in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _size(info: Mapping[str, Any]) -> int:
    size = info.get("size")
    return int(size) if isinstance(size, (int, float)) else 0


def _listing(ds: LodeDataset) -> dict[str, Mapping[str, Any]]:
    base = ds.layout.base
    try:
        ds.fs.invalidate_cache(base)
        found = ds.fs.find(base, detail=True)
    except FileNotFoundError:
        return {}
    except Exception as exc:
        raise classify(exc, "list", display_path(ds.fs, base)) from exc
    return {str(path): info for path, info in found.items() if info.get("type", "file") == "file"}


def collect_garbage(ds: LodeDataset, *, older_than: float, apply: bool = False, now: float | None = None) -> GcReport:
    """Find (and with ``apply`` delete) uncommitted data files and stale temporary files older than
    ``older_than`` seconds. Storage failures raise classified ``StorageError`` (op ``list``, ``read`` or
    ``delete``)."""
    if older_than < 0:
        raise ValueError("older_than must not be negative")
    clock = time.time() if now is None else now
    cutoff = clock - older_than
    base = ds.layout.base
    candidates: list[tuple[GcCandidate, str]] = []
    skipped_recent = 0
    committed_cache: dict[str, bool] = {}
    for path, info in sorted(_listing(ds).items()):
        rel = path[len(base) + 1 :] if path.startswith(base + "/") else path
        name = rel.rsplit("/", 1)[-1]
        mtime = _mtime(info)
        if _TEMP_RE.match(name):
            if mtime is None or mtime > cutoff:
                skipped_recent += 1
                continue
            candidates.append((GcCandidate(rel, "temp", None, None, _size(info), clock - mtime), path))
            continue
        table, _, rest = rel.partition("/")
        parsed = parse_data_filename(name)
        if table not in TABLES or parsed is None or parse_partition(rest.rsplit("/", 1)[0]) is None:
            continue
        sid = parsed[0]
        if sid not in committed_cache:
            committed_cache[sid] = ds.is_committed(sid)
        if committed_cache[sid]:
            continue
        born = snapshot_datetime(sid).timestamp()
        newest = born if mtime is None else max(born, mtime)
        if newest > cutoff:
            skipped_recent += 1
            continue
        candidates.append((GcCandidate(rel, "uncommitted", table, sid, _size(info), clock - newest), path))

    deleted: list[str] = []
    late_commits: set[str] = set()
    if apply:
        rechecked: dict[str, bool] = {}
        for candidate, path in candidates:
            cid = candidate.snapshot_id
            if cid is not None:
                if cid not in rechecked:  # negative answers are never cached: this asks the store again
                    rechecked[cid] = ds.is_committed(cid)
                if rechecked[cid]:  # committed while we looked: it is data now
                    late_commits.add(cid)
                    continue
            try:
                ds.fs.rm_file(path)
            except FileNotFoundError:
                continue
            except Exception as exc:
                raise classify(exc, "delete", display_path(ds.fs, path)) from exc
            deleted.append(candidate.path)
    kept = [c for c, _ in candidates if c.snapshot_id not in late_commits]
    skipped_committed = len(candidates) - len(kept)
    return GcReport(
        dataset=display_path(ds.fs, base),
        older_than_seconds=older_than,
        applied=apply,
        candidates=tuple(kept),
        deleted=tuple(deleted),
        skipped_recent=skipped_recent,
        skipped_committed=skipped_committed,
    )
