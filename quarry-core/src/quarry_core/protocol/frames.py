"""Frame types of the executor <-> runtime protocol (CONTRACT_IPC, CONTRACT_EMIT).

Every frame is a frozen attrs class with ``to_wire()`` (a CBOR-ready map) and ``from_wire(map)``, which
validates the contract's rules and raises :class:`~quarry_core.errors.StreamError` (or
:class:`~quarry_core.errors.VersionMismatchError`) with the contract's message. Nothing here knows about
CBOR bytes; :mod:`quarry_core.protocol.codec` does.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, TypeAlias

import attrs

from quarry_core.errors import StreamError, VersionMismatchError
from quarry_core.protocol.constants import (
    CONTRACT_VERSION,
    EVENT_TYPES,
    LOG_LEVELS,
    MAX_ARTIFACT_SIZE,
    MAX_CHUNK_SIZE,
    MAX_FILE_WRITE_SIZE,
    MAX_STACK_SIZE,
    TERMINAL_EVENT_TYPES,
)
from quarry_core.protocol.values import json_value_error, normalise_ts, parse_version

__all__ = [
    "ArtifactChunk",
    "Cancel",
    "ControlFrame",
    "Event",
    "ExecutorFrame",
    "FileWrite",
    "FileWriteAck",
    "FileWriteChunk",
    "ProxyUpdate",
    "RunRequest",
    "RunRequestError",
    "RunRequestFrame",
    "RunResult",
    "Shutdown",
    "check_contract_version",
    "check_event_payload",
    "fast_event",
    "fast_event_rules",
    "parse_control_frame",
    "parse_executor_frame",
    "validate_payload",
]

_CONTRACT = parse_version(CONTRACT_VERSION)
assert _CONTRACT is not None


def check_contract_version(value: object) -> None:
    """Accept iff ``MAJOR.MINOR.PATCH`` with the runtime's major and a minor no greater than the runtime's."""
    if value is _accepted_version[0] or (type(value) is str and value == _accepted_version[0]):
        return  # every frame of a run carries the same text: parse it once
    parsed = parse_version(value) if isinstance(value, str) else None
    assert _CONTRACT is not None
    if parsed is None or parsed[0] != _CONTRACT[0] or parsed[1] > _CONTRACT[1]:
        raise VersionMismatchError(str(value) if isinstance(value, str) else repr(value), CONTRACT_VERSION)
    _accepted_version[0] = value


_accepted_version: list[object] = [CONTRACT_VERSION]  # the last version text accepted


def _absent(d: Mapping[str, Any], key: str) -> bool:
    return d.get(key) is None


def _text(d: Mapping[str, Any], key: str, where: str, *, required: bool = True, nonempty: bool = True) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise StreamError(f"{where}: {key}: missing")
        return None
    if not isinstance(v, str):
        raise StreamError(f"{where}: {key}: expected text, got {type(v).__name__}")
    if nonempty and not v:
        raise StreamError(f"{where}: {key}: must not be empty")
    return v


def _uint(d: Mapping[str, Any], key: str, where: str, *, required: bool = True, minimum: int = 0) -> int | None:
    v = d.get(key)
    if v is None:
        if required:
            raise StreamError(f"{where}: {key}: missing")
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise StreamError(f"{where}: {key}: expected unsigned integer, got {type(v).__name__}")
    if v < minimum:
        raise StreamError(f"{where}: {key}: must be >= {minimum}, got {v}")
    return v


def _bool(d: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> bool:
    v = d.get(key)
    if v is None:
        if required:
            raise StreamError(f"{where}: {key}: missing")
        return False
    if not isinstance(v, bool):
        raise StreamError(f"{where}: {key}: expected boolean, got {type(v).__name__}")
    return v


def _bytes(d: Mapping[str, Any], key: str, where: str, limit: int) -> bytes:
    v = d.get(key)
    if not isinstance(v, (bytes, bytearray)):
        raise StreamError(f"{where}: {key}: expected bytes, got {type(v).__name__}")
    if len(v) > limit:
        raise StreamError(f"{where}: {key}: {len(v)} bytes exceeds the limit of {limit}")
    return bytes(v)


def _map(
    d: Mapping[str, Any], key: str, where: str, *, required: bool = True, checked: bool = False
) -> dict[str, Any] | None:
    """The map at ``key``; ``checked``: its values were already checked against the JSON data model."""
    v = d.get(key)
    if v is None:
        if required:
            raise StreamError(f"{where}: {key}: missing")
        return None
    if not isinstance(v, Mapping):
        raise StreamError(f"{where}: {key}: expected map, got {type(v).__name__}")
    if not checked:
        err = json_value_error(v, key)
        if err:
            raise StreamError(f"{where}: {err}")
    return dict(v)


def validate_payload(event_type: str, payload: Mapping[str, Any]) -> None:
    """Check a payload against the per-type schema; raise ``StreamError("invalid <type> payload: <why>")``."""
    # the common case in one pass; anything off takes the general path below for its message
    if event_type == "item" and type(payload) is dict:
        item_type = payload.get("item_type")
        if (
            type(item_type) is str
            and item_type
            and type(payload.get("data")) is dict
            and json_value_error(payload, "payload") is None
        ):
            return
    where = f"invalid {event_type} payload"
    err = json_value_error(payload, "payload")
    if err:
        raise StreamError(f"{where}: {err}")
    p = payload
    if event_type == "item":
        _text(p, "item_type", where)
        _map(p, "data", where, checked=True)
    elif event_type == "artifact":
        aid = _text(p, "artifact_id", where)
        try:
            uuid.UUID(str(aid))
        except ValueError:
            raise StreamError(f"{where}: artifact_id: not a UUID: {aid!r}") from None
        _text(p, "name", where)
        _text(p, "content_type", where)
        size = _uint(p, "size_bytes", where)
        if size is not None and size > MAX_ARTIFACT_SIZE:
            raise StreamError(f"{where}: size_bytes: {size} exceeds the limit of {MAX_ARTIFACT_SIZE}")
    elif event_type == "checkpoint":
        _text(p, "checkpoint_id", where)
        _text(p, "note", where, required=False, nonempty=False)
    elif event_type == "enqueue":
        _text(p, "target", where)
        _map(p, "params", where, checked=True)
        _text(p, "source", where, required=False)
        _text(p, "category", where, required=False)
    elif event_type == "rotate_proxy":
        _text(p, "reason", where, required=False, nonempty=False)
    elif event_type == "log":
        level = _text(p, "level", where)
        if level not in LOG_LEVELS:
            raise StreamError(f"{where}: level: must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        _text(p, "message", where, nonempty=False)
        _map(p, "fields", where, required=False, checked=True)
    elif event_type == "run_error":
        _text(p, "error_type", where)
        _text(p, "message", where, nonempty=False)
        stack = _text(p, "stack", where, required=False, nonempty=False)
        if stack is not None and len(stack.encode()) > MAX_STACK_SIZE:
            raise StreamError(f"{where}: stack: longer than {MAX_STACK_SIZE} bytes")
    elif event_type == "run_complete":
        _map(p, "summary", where, required=False, checked=True)
    else:  # pragma: no cover - guarded by the caller
        raise StreamError(f"unknown event type {event_type!r}")


@attrs.frozen(slots=True)
class Event:
    """An event envelope: one observation of a run, in the run's total order."""

    KIND: ClassVar[str] = "event"

    event_id: str
    run_id: str
    seq: int
    type: str
    ts: str
    payload: dict[str, Any]
    attempt: int = 1
    contract_version: str = CONTRACT_VERSION
    job_id: str | None = None
    parent_run_id: str | None = None
    spawned_by_run_id: str | None = None
    depth: int | None = None
    # Not an envelope key: the length of the CBOR frame body this event was decoded from (set by ``from_wire``
    # when the caller knows it), so policies learn an event's size without encoding it again. Ignored by
    # equality, hashing and repr; ``attrs.evolve`` drops it (an evolved event is sized by encoding it).
    _wire_size: int | None = attrs.field(default=None, init=False, eq=False, repr=False)
    # Not an envelope key either: set by quarry-speedups' ``EventDecoder`` when decoding already proved
    # ``validate_payload`` passes
    # (see :func:`check_event_payload`); ``attrs.evolve`` drops it, so a changed payload is checked again.
    _payload_valid: bool = attrs.field(default=False, init=False, eq=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES

    @property
    def wire_size(self) -> int | None:
        """Bytes of the CBOR frame body this event arrived in; ``None`` for an event built in memory."""
        return self._wire_size

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "contract_version": self.contract_version,
            "event_id": self.event_id,
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "ts": self.ts,
            "payload": self.payload,
            "attempt": self.attempt,
        }
        if self.job_id is not None:
            d["job_id"] = self.job_id
        if self.parent_run_id is not None:
            d["parent_run_id"] = self.parent_run_id
        if self.spawned_by_run_id is not None:
            d["spawned_by_run_id"] = self.spawned_by_run_id
        if self.depth is not None:
            d["depth"] = self.depth
        return d

    @classmethod
    def from_wire(cls, d: Mapping[str, Any], *, check_payload: bool = True, wire_size: int | None = None) -> Event:
        """Validate the version (first), the envelope keys and the payload schema (runtime rules 3, 4, 7).

        Run identity and ``seq`` order are the ingestion loop's business, not this decoder's; it passes
        ``check_payload=False`` and calls :func:`validate_payload` after them to keep the contract's order.
        ``wire_size``: the length of the frame body ``d`` was decoded from (kept as :attr:`wire_size`).
        """
        event = _fast_event(d) if type(d) is dict else None
        if event is None:
            event = cls._from_wire_checked(d)
        if check_payload:
            validate_payload(event.type, event.payload)
        if wire_size is not None:
            object.__setattr__(event, "_wire_size", wire_size)
        return event

    @classmethod
    def _from_wire_checked(cls, d: Mapping[str, Any]) -> Event:
        """The general decoder: every rule in the contract's order, with its message."""
        if "contract_version" not in d or d["contract_version"] is None:
            raise StreamError("invalid envelope: contract_version: missing")
        check_contract_version(d["contract_version"])
        where = "invalid envelope"
        etype = _text(d, "type", where)
        assert etype is not None
        if etype not in EVENT_TYPES:
            raise StreamError(f"invalid envelope: type: unknown event type {etype!r}")
        event_id = _text(d, "event_id", where)
        run_id = _text(d, "run_id", where)
        seq = _uint(d, "seq", where, minimum=1)
        ts_raw = _text(d, "ts", where)
        try:
            ts = normalise_ts(ts_raw or "")
        except ValueError as exc:
            raise StreamError(f"invalid envelope: ts: {exc}") from None
        payload = d.get("payload")
        if not isinstance(payload, Mapping):
            raise StreamError(
                "invalid envelope: payload: missing"
                if payload is None
                else f"invalid envelope: payload: expected map, got {type(payload).__name__}"
            )
        attempt = _uint(d, "attempt", where, minimum=1)
        job_id = _text(d, "job_id", where, required=False)
        parent = _text(d, "parent_run_id", where, required=False)
        spawned = _text(d, "spawned_by_run_id", where, required=False)
        depth = _uint(d, "depth", where, required=False, minimum=1)
        return cls(
            event_id=event_id or "",
            run_id=run_id or "",
            seq=seq or 0,
            type=etype,
            ts=ts,
            payload=dict(payload),
            attempt=attempt or 1,
            contract_version=d["contract_version"],
            job_id=job_id,
            parent_run_id=parent,
            spawned_by_run_id=spawned,
            depth=depth,
        )


def _fast_event(d: dict[str, Any]) -> Event | None:
    """The common case of :meth:`Event.from_wire` in one pass: exact built-in types, a canonical ``ts`` and the
    accepted contract version. ``None`` for anything else, and the general decoder then finds the first broken
    rule and its message, so the outcome of every input is the same either way."""
    cv = d.get("contract_version")
    if type(cv) is not str or cv != _accepted_version[0]:
        return None
    etype = d.get("type")
    event_id = d.get("event_id")
    run_id = d.get("run_id")
    seq = d.get("seq")
    ts = d.get("ts")
    payload = d.get("payload")
    attempt = d.get("attempt")
    if not (
        type(etype) is str
        and etype in EVENT_TYPES
        and type(event_id) is str
        and event_id
        and type(run_id) is str
        and run_id
        and type(seq) is int
        and seq >= 1
        and type(ts) is str
        and (ts is _canonical_ts[0] or ts == _canonical_ts[0] or _is_canonical_ts(ts))
        and type(payload) is dict
        and type(attempt) is int
        and attempt >= 1
    ):
        return None
    job_id = d.get("job_id")
    parent = d.get("parent_run_id")
    spawned = d.get("spawned_by_run_id")
    depth = d.get("depth")
    if job_id is not None and not (type(job_id) is str and job_id):
        return None
    if parent is not None and not (type(parent) is str and parent):
        return None
    if spawned is not None and not (type(spawned) is str and spawned):
        return None
    if depth is not None and not (type(depth) is int and depth >= 1):
        return None
    if len(d) != _ENVELOPE_KEYS + (job_id is not None) + (parent is not None) + (spawned is not None) + (
        depth is not None
    ):
        return None  # another key (or a lineage key holding null): the general path decides
    return Event(event_id, run_id, seq, etype, ts, dict(payload), attempt, cv, job_id, parent, spawned, depth)


#: the envelope keys every event carries (``contract_version`` … ``attempt``); lineage keys are optional
_ENVELOPE_KEYS = 8


def fast_event(d: dict[str, Any], wire_size: int) -> Event | None:
    """``parse_executor_frame(d, check_payload=False, wire_size=wire_size)`` for the common event frame, or
    ``None``: then the caller takes the general path, which gives the same outcome for every input.

    An event is returned only when every key of ``d`` is an envelope key, hence text: it also stands for the
    decoder's key check (:func:`~quarry_core.protocol.codec.check_frame_map`). quarry-speedups' compiled
    ``EventDecoder`` applies the same rules (:func:`fast_event_rules`) and also marks an ``item`` whose payload
    passes the item rules, its frame being inside the JSON data model; :func:`check_event_payload` then does not
    check it again.
    """
    event = _fast_event(d)
    if event is None:
        return None
    object.__setattr__(event, "_wire_size", wire_size)
    return event


def fast_event_rules() -> dict[str, Any]:
    """The moving parts of :func:`fast_event`'s rules, for a compiled decoder that builds events itself
    (``quarry_speedups.EventDecoder``): the cell holding the last accepted contract version text, the cell
    holding the last canonical ``ts`` (both kept current here), the check of a ``ts`` not seen before (which
    updates its cell) and the event types."""
    return {
        "version_cell": _accepted_version,
        "ts_cell": _canonical_ts,
        "is_canonical_ts": _is_canonical_ts,
        "event_types": EVENT_TYPES,
    }


def check_event_payload(event: Event) -> None:
    """``validate_payload(event.type, event.payload)``, unless decoding already proved it passes."""
    if not event._payload_valid:
        validate_payload(event.type, event.payload)


#: The last ``ts`` text found canonical (``YYYY-MM-DDTHH:MM:SS.mmmZ``): events of one millisecond share it.
_canonical_ts: list[str] = [""]


def _is_canonical_ts(ts: str) -> bool:
    """Whether ``ts`` is already what :func:`normalise_ts` returns (then it is returned unchanged)."""
    try:
        if normalise_ts(ts) is not ts:
            return False
    except ValueError:
        return False
    _canonical_ts[0] = ts
    return True


@attrs.frozen(slots=True)
class ArtifactChunk:
    """Raw bytes of an artifact, sent before its commit event."""

    KIND: ClassVar[str] = "artifact_chunk"

    artifact_id: str
    seq: int
    is_last: bool
    data: bytes

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "artifact_chunk",
            "artifact_id": self.artifact_id,
            "seq": self.seq,
            "is_last": self.is_last,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ArtifactChunk:
        where = "invalid artifact_chunk"
        aid = _text(d, "artifact_id", where)
        seq = _uint(d, "seq", where, minimum=1)
        is_last = _bool(d, "is_last", where, required=False)
        data = _bytes(d, "data", where, MAX_CHUNK_SIZE)
        return cls(artifact_id=aid or "", seq=seq or 0, is_last=is_last, data=data)


@attrs.frozen(slots=True)
class FileWrite:
    """A sidecar file of at most 8 MiB, acked by ``file_write_ack``."""

    KIND: ClassVar[str] = "file_write"

    write_id: int
    filename: str
    content_type: str
    data: bytes

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "file_write",
            "write_id": self.write_id,
            "filename": self.filename,
            "content_type": self.content_type,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> FileWrite:
        where = "invalid file_write"
        write_id = _uint(d, "write_id", where, minimum=1)
        # filename and content type rules are checked by the runtime and answered by a rejecting ack
        filename = _text(d, "filename", where, nonempty=False)
        content_type = _text(d, "content_type", where, nonempty=False)
        data = _bytes(d, "data", where, MAX_FILE_WRITE_SIZE)
        return cls(write_id=write_id or 0, filename=filename or "", content_type=content_type or "", data=data)


@attrs.frozen(slots=True)
class FileWriteChunk:
    """One piece of a sidecar file above 8 MiB."""

    KIND: ClassVar[str] = "file_write_chunk"

    write_id: int
    filename: str
    content_type: str
    seq: int
    is_last: bool
    data: bytes

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "file_write_chunk",
            "write_id": self.write_id,
            "filename": self.filename,
            "content_type": self.content_type,
            "seq": self.seq,
            "is_last": self.is_last,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> FileWriteChunk:
        where = "invalid file_write_chunk"
        write_id = _uint(d, "write_id", where, minimum=1)
        filename = _text(d, "filename", where, nonempty=False)
        content_type = _text(d, "content_type", where, nonempty=False)
        seq = _uint(d, "seq", where, minimum=1)
        is_last = _bool(d, "is_last", where, required=False)
        data = _bytes(d, "data", where, MAX_CHUNK_SIZE)
        return cls(
            write_id=write_id or 0,
            filename=filename or "",
            content_type=content_type or "",
            seq=seq or 0,
            is_last=is_last,
            data=data,
        )


RUN_RESULT_STATUSES = ("completed", "error", "crash")


@attrs.frozen(slots=True)
class RunResult:
    """The executor's verdict, sent once after the terminal event (or instead of one on crash paths)."""

    KIND: ClassVar[str] = "run_result"

    run_id: str
    status: str
    message: str | None = None
    error_type: str | None = None
    stack: str | None = None
    proxy_used: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        outcome: dict[str, Any] = {"status": self.status}
        if self.message is not None:
            outcome["message"] = self.message
        if self.error_type is not None:
            outcome["error_type"] = self.error_type
        if self.stack is not None:
            outcome["stack"] = self.stack
        d: dict[str, Any] = {"type": "run_result", "run_id": self.run_id, "outcome": outcome}
        if self.proxy_used is not None:
            d["proxy_used"] = self.proxy_used
        return d

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> RunResult:
        where = "invalid run_result"
        run_id = _text(d, "run_id", where)
        outcome = d.get("outcome")
        if not isinstance(outcome, Mapping):
            raise StreamError(f"{where}: outcome: expected map")
        status = _text(outcome, "status", where)
        if status not in RUN_RESULT_STATUSES:
            raise StreamError(f"{where}: outcome.status: must be completed, error or crash, got {status!r}")
        proxy = d.get("proxy_used")
        if proxy is not None and not isinstance(proxy, Mapping):
            raise StreamError(f"{where}: proxy_used: expected map")
        return cls(
            run_id=run_id or "",
            status=status or "",
            message=_text(outcome, "message", where, required=False, nonempty=False),
            error_type=_text(outcome, "error_type", where, required=False, nonempty=False),
            stack=_text(outcome, "stack", where, required=False, nonempty=False),
            proxy_used=dict(proxy) if proxy is not None else None,
        )


ExecutorFrame: TypeAlias = Event | ArtifactChunk | FileWrite | FileWriteChunk | RunResult

_EXECUTOR_FRAME_CLASSES: dict[str, type[ArtifactChunk | FileWrite | FileWriteChunk | RunResult]] = {
    "artifact_chunk": ArtifactChunk,
    "file_write": FileWrite,
    "file_write_chunk": FileWriteChunk,
    "run_result": RunResult,
}


def parse_executor_frame(
    d: Mapping[str, Any], *, check_payload: bool = True, wire_size: int | None = None
) -> ExecutorFrame:
    """Turn a decoded map from the executor's stdout into a frame, enforcing the contract.

    Raises ``StreamError`` for an unknown or missing ``type`` and any rule broken, and
    ``VersionMismatchError`` for an incompatible event envelope. ``wire_size`` (the frame body's length) is
    kept on an :class:`Event` as :attr:`Event.wire_size`.
    """
    ftype = d.get("type")
    if not isinstance(ftype, str):
        raise StreamError("invalid frame: type: missing or not text")
    if ftype in EVENT_TYPES:
        return Event.from_wire(d, check_payload=check_payload, wire_size=wire_size)
    cls = _EXECUTOR_FRAME_CLASSES.get(ftype)
    if cls is None:
        raise StreamError(f"invalid frame: unknown frame type {ftype!r}")
    return cls.from_wire(d)


# --------------------------------------------------------------------------- runtime -> executor


class RunRequestError(ValueError):
    """An unusable run request; the executor exits 3 with this message on stderr."""


def _proxy_repr(proxy: dict[str, Any] | None) -> str:
    """A proxy object's repr with the password masked (CONTRACT_PROXY §9: never in reprs)."""
    if proxy is None:
        return "None"
    return repr({k: ("***" if k == "password" and v else v) for k, v in proxy.items()})


@attrs.frozen(slots=True)
class RunRequest:
    """What one run needs: identity, lineage, the script, the job and optional proxy / browser / storage."""

    run_id: str
    attempt: int
    script: str
    job: dict[str, Any]
    job_id: str | None = None
    parent_run_id: str | None = None
    spawned_by_run_id: str | None = None
    depth: int | None = None
    proxy: dict[str, Any] | None = attrs.field(default=None, repr=_proxy_repr)
    browser_ws_endpoint: str | None = None
    storage: dict[str, Any] | None = None
    error_snapshot: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"run_id": self.run_id, "attempt": self.attempt, "script": self.script, "job": self.job}
        for key in (
            "job_id",
            "parent_run_id",
            "spawned_by_run_id",
            "depth",
            "proxy",
            "browser_ws_endpoint",
            "storage",
            "error_snapshot",
        ):
            v = getattr(self, key)
            if v is not None:
                d[key] = v
        return d

    def to_json_line(self) -> bytes:
        return (json.dumps(self.to_wire(), ensure_ascii=False, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_wire(cls, d: object) -> RunRequest:
        """Validate per CONTRACT_IPC §8.1; raise :class:`RunRequestError` with the reason."""
        if not isinstance(d, Mapping):
            raise RunRequestError(f"run request must be a JSON object, got {type(d).__name__}")
        run_id = d.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise RunRequestError("run_id must be a non-empty string")
        attempt = d.get("attempt")
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise RunRequestError("attempt must be an integer >= 1")
        for key in ("job_id", "parent_run_id", "spawned_by_run_id", "browser_ws_endpoint"):
            v = d.get(key)
            if v is not None and not isinstance(v, str):
                raise RunRequestError(f"{key} must be a string")
        parent = d.get("parent_run_id") or None
        if attempt > 1 and not parent:
            raise RunRequestError("lineage violation: attempt > 1 requires parent_run_id")
        if attempt == 1 and parent:
            raise RunRequestError("lineage violation: parent_run_id must not be set when attempt is 1")
        depth = d.get("depth")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
            raise RunRequestError("depth must be an integer >= 0")
        job = d.get("job")
        if not isinstance(job, Mapping):
            raise RunRequestError(f"job must be a JSON object, got {type(job).__name__}")
        script = d.get("script")
        if not isinstance(script, str) or not os.path.isabs(script):
            raise RunRequestError("script must be an absolute path")
        proxy = d.get("proxy")
        if proxy is not None:
            _validate_request_proxy(proxy)
        storage = d.get("storage")
        if storage is not None and not isinstance(storage, Mapping):
            storage = None  # informational only: a malformed value warns (the executor logs it)
        error_snapshot = d.get("error_snapshot")
        if error_snapshot is not None and not isinstance(error_snapshot, bool):
            raise RunRequestError("error_snapshot must be a boolean")
        return cls(
            run_id=run_id,
            attempt=attempt,
            script=script,
            job=dict(job),
            job_id=d.get("job_id") or None,
            parent_run_id=parent,
            spawned_by_run_id=d.get("spawned_by_run_id") or None,
            depth=depth,
            proxy=dict(proxy) if proxy is not None else None,
            browser_ws_endpoint=d.get("browser_ws_endpoint") or None,
            storage=dict(storage) if storage is not None else None,
            error_snapshot=error_snapshot,
        )


def _validate_request_proxy(proxy: object) -> None:
    if not isinstance(proxy, Mapping):
        raise RunRequestError("invalid proxy: must be an object")
    if proxy.get("protocol") not in ("http", "https", "socks5"):
        raise RunRequestError("invalid proxy: protocol must be http, https or socks5")
    host = proxy.get("host")
    if not isinstance(host, str) or not host:
        raise RunRequestError("invalid proxy: host must be a non-empty string")
    port = proxy.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RunRequestError("invalid proxy: port must be an integer between 1 and 65535")
    if bool(proxy.get("username")) != bool(proxy.get("password")):
        raise RunRequestError("invalid proxy: username and password must be set together")


@attrs.frozen(slots=True)
class FileWriteAck:
    KIND: ClassVar[str] = "file_write_ack"

    write_id: int
    ok: bool
    error: str | None = None
    error_kind: str | None = None
    key: str | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "file_write_ack", "write_id": self.write_id, "ok": self.ok}
        for k in ("error", "error_kind", "key"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        return d

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> FileWriteAck:
        where = "invalid file_write_ack"
        return cls(
            write_id=_uint(d, "write_id", where, minimum=1) or 0,
            ok=_bool(d, "ok", where),
            error=_text(d, "error", where, required=False, nonempty=False),
            error_kind=_text(d, "error_kind", where, required=False, nonempty=False),
            key=_text(d, "key", where, required=False, nonempty=False),
        )


@attrs.frozen(slots=True)
class ProxyUpdate:
    KIND: ClassVar[str] = "proxy_update"

    run_id: str
    seq: int
    ok: bool
    changed: bool = False
    proxy: dict[str, Any] | None = attrs.field(default=None, repr=_proxy_repr)
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "proxy_update",
            "run_id": self.run_id,
            "seq": self.seq,
            "ok": self.ok,
            "changed": self.changed,
        }
        if self.proxy is not None:
            d["proxy"] = self.proxy
        if self.error is not None:
            d["error"] = self.error
        return d

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ProxyUpdate:
        where = "invalid proxy_update"
        proxy = d.get("proxy")
        return cls(
            run_id=_text(d, "run_id", where) or "",
            seq=_uint(d, "seq", where, minimum=1) or 0,
            ok=_bool(d, "ok", where),
            changed=_bool(d, "changed", where, required=False),
            proxy=dict(proxy) if isinstance(proxy, Mapping) else None,
            error=_text(d, "error", where, required=False, nonempty=False),
        )


CANCEL_REASONS = ("signal", "timeout", "shutdown")


@attrs.frozen(slots=True)
class Cancel:
    KIND: ClassVar[str] = "cancel"

    run_id: str
    reason: str
    grace_ms: int

    def to_wire(self) -> dict[str, Any]:
        return {"type": "cancel", "run_id": self.run_id, "reason": self.reason, "grace_ms": self.grace_ms}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Cancel:
        where = "invalid cancel"
        reason = _text(d, "reason", where)
        if reason not in CANCEL_REASONS:
            raise StreamError(f"{where}: reason: must be signal, timeout or shutdown")
        return cls(
            run_id=_text(d, "run_id", where) or "",
            reason=reason or "",
            grace_ms=_uint(d, "grace_ms", where) or 0,
        )


@attrs.frozen(slots=True)
class RunRequestFrame:
    """A run request handed to a warm executor over stdin."""

    KIND: ClassVar[str] = "run_request"

    request: RunRequest

    def to_wire(self) -> dict[str, Any]:
        return {"type": "run_request", **self.request.to_wire()}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> RunRequestFrame:
        body = {k: v for k, v in d.items() if k != "type"}
        try:
            return cls(RunRequest.from_wire(body))
        except RunRequestError as exc:
            raise StreamError(f"invalid run_request: {exc}") from None


@attrs.frozen(slots=True)
class Shutdown:
    KIND: ClassVar[str] = "shutdown"

    def to_wire(self) -> dict[str, Any]:
        return {"type": "shutdown"}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Shutdown:
        return cls()


ControlFrame: TypeAlias = FileWriteAck | ProxyUpdate | Cancel | RunRequestFrame | Shutdown

_CONTROL_CLASSES: dict[str, type[FileWriteAck | ProxyUpdate | Cancel | RunRequestFrame | Shutdown]] = {
    "file_write_ack": FileWriteAck,
    "proxy_update": ProxyUpdate,
    "cancel": Cancel,
    "run_request": RunRequestFrame,
    "shutdown": Shutdown,
}


def parse_control_frame(d: Mapping[str, Any]) -> ControlFrame | None:
    """Decode a control frame on the executor's stdin; ``None`` for an unknown type (ignored with a warning)."""
    ftype = d.get("type")
    if not isinstance(ftype, str):
        raise StreamError("invalid control frame: type: missing or not text")
    cls = _CONTROL_CLASSES.get(ftype)
    if cls is None:
        return None
    return cls.from_wire(d)
