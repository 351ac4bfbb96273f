"""The notification outbox (CONTRACT_INTEGRATION §3): at-least-once delivery without an orchestrator.

Records live in table ``outbox`` of the run's partition (``event_type=adapter_outbox``) and are append-only. A run
with several adapters keeps one entry per adapter: ``adapter`` holds the adapter's name (its type unless
``[[adapters]] name`` renames it), and the newest record per (``notification_id``, ``adapter``) (by
``recorded_at``, then commit order) is that delivery's state, ``pending``, ``delivered`` or ``expired``.
:func:`drain` retries what is still ``pending`` with the adapter of that name; ``quarry adapter drain`` and
``adapter.drain_on_run`` call it.

Storage is reached only through the storage backend plugin: ``factory(StorageConfig).open_run(partition)`` to
append, and the plugin's ``reader(StorageConfig)`` (``read("outbox")`` → rows with their partition values) to
find pending entries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from loguru import logger

from quarry_core.interfaces import AdapterConfig, RunPartition, RunStorage, StorageConfig
from quarry_core.notify import redact_text, redact_url
from quarry_core.protocol.values import format_ts

if TYPE_CHECKING:
    from quarry_core.notify import CancelSignal
    from quarry_core.plugins import PluginHost
    from quarry_core.runtime.notifications import PublishResult

__all__ = [
    "DELIVERED",
    "EXPIRED",
    "PENDING",
    "DrainReport",
    "Entry",
    "Outbox",
    "drain",
    "latest_entries",
    "new_entry",
    "read_rows",
]

PENDING = "pending"
DELIVERED = "delivered"
EXPIRED = "expired"
TABLE = "outbox"
#: Bound of one outbox write (a hung storage must not hold the run's exit).
WRITE_TIMEOUT = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen
class Entry:
    """One outbox record (the state of one notification at ``recorded_at``)."""

    notification_id: str
    state: str
    adapter: str
    target: str
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime
    recorded_at: datetime
    last_error: str | None = None

    def record(self) -> dict[str, Any]:
        """The row Lode stores (``payload`` as JSON text)."""
        rec: dict[str, Any] = {
            "record_kind": "outbox",
            "notification_id": self.notification_id,
            "state": self.state,
            "adapter": self.adapter,
            "target": self.target,
            "payload": json.dumps(dict(self.payload), separators=(",", ":"), ensure_ascii=False),
            "attempts": self.attempts,
            "created_at": format_ts(self.created_at),
            "recorded_at": format_ts(self.recorded_at),
        }
        if self.last_error is not None:
            rec["last_error"] = self.last_error
        return rec

    def after(self, result: PublishResult, *, now: datetime | None = None) -> Entry:
        """The next state after a publish: ``delivered``, or ``pending`` with more attempts and the last error."""
        return attrs.evolve(
            self,
            state=DELIVERED if result.delivered else PENDING,
            attempts=self.attempts + result.attempts,
            last_error=result.error if not result.delivered else self.last_error,
            recorded_at=max(now or _now(), self.recorded_at),
        )


def new_entry(
    adapter: AdapterConfig, event: Mapping[str, Any], *, name: str | None = None, now: datetime | None = None
) -> Entry:
    """The first ``pending`` record of a notification to one adapter (attempts 0), written before publishing;
    ``name`` is the adapter's name (default: its type)."""
    when = now or _now()
    return Entry(
        notification_id=str(event["notification_id"]),
        state=PENDING,
        adapter=name or adapter.type,
        target=redact_url(adapter.url),
        payload=dict(event),
        attempts=0,
        created_at=when,
        recorded_at=when,
    )


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@attrs.frozen
class Stored:
    """An entry as read back, with the partition it lives in."""

    entry: Entry
    partition: RunPartition


def _entry_from_row(row: Mapping[str, Any]) -> Stored:
    payload = row.get("payload")
    if isinstance(payload, str):
        payload = json.loads(payload)
    entry = Entry(
        notification_id=str(row["notification_id"]),
        state=str(row["state"]),
        adapter=str(row.get("adapter") or ""),
        target=str(row.get("target") or ""),
        payload=dict(payload or {}),
        attempts=int(row.get("attempts") or 0),
        created_at=_as_datetime(row.get("created_at") or row["recorded_at"]),
        recorded_at=_as_datetime(row["recorded_at"]),
        last_error=row.get("last_error"),
    )
    partition = RunPartition(str(row["source"]), str(row["category"]), str(row["day"]), str(row["run_id"]))
    return Stored(entry, partition)


def latest_entries(rows: Sequence[Mapping[str, Any]]) -> list[Stored]:
    """The newest record per (``notification_id``, ``adapter``) (by ``recorded_at``; equal times: the later row,
    in commit order), oldest notification first."""
    newest: dict[tuple[str, str], Stored] = {}
    for row in rows:
        stored = _entry_from_row(row)
        key = (stored.entry.notification_id, stored.entry.adapter)
        prev = newest.get(key)
        if prev is None or stored.entry.recorded_at >= prev.entry.recorded_at:
            newest[key] = stored
    return sorted(newest.values(), key=lambda s: (s.entry.created_at, s.entry.notification_id, s.entry.adapter))


class Outbox:
    """Appends outbox records through the storage backend plugin (one run storage per partition)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._runs: dict[RunPartition, RunStorage] = {}
        self._lock = anyio.Lock()  # the adapters of one run append concurrently: one write at a time

    @classmethod
    def open(cls, host: PluginHost, storage: StorageConfig) -> Outbox:
        """Build the storage backend of ``storage``; a failure is kept and reported by :meth:`append`."""
        try:
            backend = host.storage_backend(storage.backend).record.factory(storage)
        except Exception as exc:
            return cls(_Broken(exc))
        return cls(backend)

    async def append(self, partition: RunPartition, entry: Entry) -> bool:
        """Append one record; ``False`` (with a warning) if it could not be written."""
        try:
            if isinstance(self._backend, _Broken):
                raise self._backend.error
            run = self._runs.get(partition)
            if run is None:
                run = self._runs[partition] = self._backend.open_run(partition)
            async with self._lock:
                with anyio.fail_after(WRITE_TIMEOUT):
                    await run.write_records({TABLE: [entry.record()]})
        except Exception as exc:
            detail = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
            logger.warning(
                "Warning: could not write the {} outbox record of notification {}: {}",
                entry.state,
                entry.notification_id,
                redact_text(detail),
            )
            return False
        return True

    async def close(self) -> None:
        for run in self._runs.values():
            try:
                await run.close()
            except Exception:
                pass
        self._runs.clear()
        if not isinstance(self._backend, _Broken):
            try:
                await self._backend.close()
            except Exception:
                pass


@attrs.frozen
class _Broken:
    error: Exception


@attrs.define
class DrainReport:
    """What a drain did: ``{examined, delivered, failed, expired, skipped}`` plus, for ``--dry-run``, the list."""

    examined: int = 0
    delivered: int = 0
    failed: int = 0
    expired: int = 0
    skipped: int = 0
    pending: list[dict[str, Any]] = attrs.field(factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "examined": self.examined,
            "delivered": self.delivered,
            "failed": self.failed,
            "expired": self.expired,
            "skipped": self.skipped,
        }


def read_rows(host: PluginHost, storage: StorageConfig) -> list[dict[str, Any]]:
    """Every committed ``outbox`` row of the dataset (with partition values), through the backend's ``reader``.

    An empty list when nothing was ever stored there. Raises ``ConfigError`` when the backend cannot be read.
    """
    from quarry_core.errors import ConfigError

    record = host.storage_backend(storage.backend).record
    reader_factory = getattr(record, "reader", None)
    if reader_factory is None:
        raise ConfigError(f'storage backend "{storage.backend}" registers no reader: the outbox cannot be read')
    reader = reader_factory(storage)
    exists = getattr(reader, "exists", None)
    if exists is not None and not exists():
        return []
    rows: list[dict[str, Any]] = reader.read(TABLE).to_pylist()
    return rows


def _age(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:.0f}s"


async def drain(
    host: PluginHost,
    storage: StorageConfig,
    rows: Sequence[Mapping[str, Any]],
    adapters: Mapping[str, AdapterConfig],
    *,
    older_than: float = 60.0,
    max_age: float = 7 * 24 * 3600.0,
    limit: int = 0,
    dry_run: bool = False,
    cancel: CancelSignal | None = None,
    now: datetime | None = None,
) -> DrainReport:
    """Retry the ``pending`` entries among ``rows`` (the ``outbox`` table) with ``adapters`` (name → settings).

    Entries whose last record is younger than ``older_than`` seconds are left alone (a run may be publishing
    them); the rest, oldest first and at most ``limit`` (0 = all), are examined: older than ``max_age`` (since
    creation) → ``expired`` appended and a warning, never published; an adapter name not in ``adapters`` →
    skipped with a warning; else the stored payload is published unchanged with the adapter of that name and
    ``delivered`` or ``pending`` appended. Each entry is published on its own: one adapter failing never keeps
    another's entries from being delivered.
    """
    from quarry_core.runtime.notifications import publish

    when = now or _now()
    report = DrainReport()
    due = [
        s
        for s in latest_entries(rows)
        if s.entry.state == PENDING and (when - s.entry.recorded_at).total_seconds() >= older_than
    ]
    if limit > 0:
        due = due[:limit]
    box = Outbox.open(host, storage) if not dry_run else None
    try:
        for stored in due:
            entry = stored.entry
            report.examined += 1
            age = (when - entry.created_at).total_seconds()
            if dry_run:
                report.pending.append(
                    {
                        "notification_id": entry.notification_id,
                        "run_id": stored.partition.run_id,
                        "adapter": entry.adapter,
                        "target": entry.target,
                        "attempts": entry.attempts,
                        "created_at": format_ts(entry.created_at),
                        "last_error": entry.last_error,
                    }
                )
                continue
            assert box is not None
            if age > max_age:
                report.expired += 1
                logger.warning(
                    "Warning: outbox notification {} of run {} expired after {} ({} attempts); giving up",
                    entry.notification_id,
                    stored.partition.run_id,
                    _age(age),
                    entry.attempts,
                )
                await box.append(stored.partition, attrs.evolve(entry, state=EXPIRED, recorded_at=_now()))
                continue
            config = adapters.get(entry.adapter)
            if config is None:
                report.skipped += 1
                logger.warning(
                    'Warning: outbox notification {} was stored for the "{}" adapter, not {}; skipped',
                    entry.notification_id,
                    entry.adapter,
                    ", ".join(f'"{n}"' for n in adapters) or "any configured adapter",
                )
                continue
            result = await publish(host, config, entry.payload, cancel=cancel)
            if result.delivered:
                report.delivered += 1
            else:
                report.failed += 1
                logger.warning(
                    "Warning: outbox notification {} of run {} failed again ({}): {}",
                    entry.notification_id,
                    stored.partition.run_id,
                    entry.adapter,
                    result.error,
                )
            await box.append(stored.partition, entry.after(result))
    finally:
        if box is not None:
            await box.close()
    return report
