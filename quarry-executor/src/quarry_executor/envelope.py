"""Event envelopes of one run (wire.md §4), built for speed: the per-emit path is one dict and one encode.

* ``event_id``: a random (version 4) UUID in its text form, drawn from a pool of ``os.urandom`` bytes, so
  an id costs a slice and a format instead of a ``uuid.uuid4()`` call.
* ``ts``: RFC 3339 UTC with milliseconds and ``Z``, the same text as
  :func:`quarry_core.protocol.utc_now_ts`, formatted once per millisecond.
* lineage keys from the run request; absent ones are omitted, ``depth`` only when > 0.
"""

from __future__ import annotations

import os
import time
from typing import Any

from quarry_core.protocol import CONTRACT_VERSION, RunRequest, encode_frame

__all__ = ["EnvelopeFactory", "new_event_id", "now_ts"]

_POOL_IDS = 4096
_VARIANT = "89ab"


class _IdPool:
    def __init__(self) -> None:
        self._hex = ""
        self._pos = 0

    def next(self) -> str:
        pos = self._pos
        if pos >= len(self._hex):
            self._hex = os.urandom(16 * _POOL_IDS).hex()
            pos = 0
        self._pos = pos + 32
        h = self._hex[pos : pos + 32]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


class _Clock:
    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def now(self) -> str:
        ms = int(time.time() * 1000)
        if ms != self._ms:
            self._ms = ms
            sec, rem = divmod(ms, 1000)
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{rem:03d}Z"
        return self._text


_ids = _IdPool()
_clock = _Clock()

new_event_id = _ids.next
now_ts = _clock.now


class EnvelopeFactory:
    """Encodes the event frames of one run (length prefix included)."""

    __slots__ = ("_attempt", "_lineage", "_run_id")

    def __init__(self, request: RunRequest) -> None:
        self._run_id = request.run_id
        self._attempt = request.attempt
        lineage: dict[str, Any] = {}
        if request.job_id is not None:
            lineage["job_id"] = request.job_id
        if request.parent_run_id is not None:
            lineage["parent_run_id"] = request.parent_run_id
        if request.spawned_by_run_id is not None:
            lineage["spawned_by_run_id"] = request.spawned_by_run_id
        if request.depth:
            lineage["depth"] = request.depth
        self._lineage = lineage

    def encode(self, event_type: str, payload: dict[str, Any], seq: int) -> bytes:
        """The event frame's bytes. ``ValueError`` when it cannot be encoded or exceeds the frame limit."""
        d = {
            "contract_version": CONTRACT_VERSION,
            "event_id": _ids.next(),
            "run_id": self._run_id,
            "seq": seq,
            "type": event_type,
            "ts": _clock.now(),
            "payload": payload,
            "attempt": self._attempt,
        }
        if self._lineage:
            d.update(self._lineage)
        return encode_frame(d)
