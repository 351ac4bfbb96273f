"""Hypothesis strategies for events, chunks and event streams, in one place (STYLE habit 12).

Importing this module imports Hypothesis; :mod:`quarry_core.testing` itself does not.

- :func:`event_types`, :func:`droppable_types`, :func:`payloads` (valid for a type), :func:`events`;
- :func:`chunk_data`, :func:`artifacts` (chunks of one artifact plus its commit record);
- :func:`frame_streams`: what an executor sends in one run, with consecutive ``seq`` from 1 and each artifact's
  chunks before its record.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st

from quarry_core.protocol.constants import DROPPABLE_EVENT_TYPES, LOG_LEVELS
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_core.testing.fakes import ALL_EVENT_TYPES, DEFAULT_RUN_ID, DEFAULT_TS, make_artifact, make_event

__all__ = [
    "artifacts",
    "chunk_data",
    "droppable_types",
    "event_types",
    "events",
    "frame_streams",
    "json_values",
    "payloads",
]

_text = st.text(st.characters(codec="utf-8"), max_size=20)


def json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Values of the JSON data model that payloads accept (no bytes, finite floats, 64-bit ints)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | _text
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
        max_leaves=max_leaves,
    )


def event_types() -> st.SearchStrategy[str]:
    return st.sampled_from(ALL_EVENT_TYPES)


def droppable_types() -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(DROPPABLE_EVENT_TYPES))


def _maps() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(_text, json_values(6), max_size=4)


@st.composite
def payloads(draw: st.DrawFn, event_type: str) -> dict[str, Any]:
    """A payload that passes ``validate_payload(event_type, ...)``."""
    non_empty = _text.filter(bool)
    if event_type == "item":
        return {"item_type": draw(non_empty), "data": draw(_maps())}
    if event_type == "artifact":
        return {
            "artifact_id": str(draw(st.uuids())),
            "name": draw(non_empty),
            "content_type": "application/octet-stream",
            "size_bytes": draw(st.integers(0, 1 << 20)),
        }
    if event_type == "checkpoint":
        return {"checkpoint_id": draw(non_empty)}
    if event_type == "enqueue":
        return {"target": draw(non_empty), "params": draw(_maps())}
    if event_type == "rotate_proxy":
        return {"reason": draw(_text)}
    if event_type == "log":
        return {"level": draw(st.sampled_from(LOG_LEVELS)), "message": draw(_text)}
    if event_type == "run_error":
        return {"error_type": draw(non_empty), "message": draw(_text)}
    if event_type == "run_complete":
        return {"summary": draw(_maps())}
    raise ValueError(f"unknown event type {event_type!r}")


@st.composite
def events(
    draw: st.DrawFn, *, seq: int | None = None, event_type: str | None = None, run_id: str = DEFAULT_RUN_ID
) -> Event:
    """One valid event; ``seq`` and ``event_type`` are drawn unless given."""
    etype = event_type if event_type is not None else draw(event_types())
    n = seq if seq is not None else draw(st.integers(1, 1 << 31))
    return Event(
        event_id=f"{run_id}-{n:08d}",
        run_id=run_id,
        seq=n,
        type=etype,
        ts=DEFAULT_TS,
        payload=draw(payloads(etype)),
    )


def chunk_data(max_size: int = 64) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=0, max_size=max_size)


@st.composite
def artifacts(
    draw: st.DrawFn, *, seq: int, max_chunks: int = 4, max_chunk_size: int = 64
) -> tuple[list[ArtifactChunk], Event]:
    """The chunks of one artifact (seq 1.., the last flagged) and its commit record with event ``seq``."""
    parts = draw(st.lists(chunk_data(max_chunk_size), min_size=1, max_size=max_chunks))
    aid = str(uuid.UUID(int=draw(st.integers(0, (1 << 128) - 1))))
    return make_artifact(seq, parts, artifact_id=aid)


@st.composite
def frame_streams(
    draw: st.DrawFn,
    *,
    max_events: int = 50,
    types: st.SearchStrategy[str] | None = None,
    simple_payloads: bool = True,
) -> list[Event | ArtifactChunk]:
    """A run's frames: events with ``seq`` 1..n, each ``artifact`` preceded by its chunks.

    ``simple_payloads`` (default) uses the small deterministic payloads of :func:`make_event`, which keeps
    long streams fast; pass ``False`` to draw arbitrary valid payloads.
    """
    kinds = draw(st.lists(types if types is not None else event_types(), max_size=max_events))
    frames: list[Event | ArtifactChunk] = []
    for i, etype in enumerate(kinds):
        seq = i + 1
        if etype == "artifact":
            chunks, record = draw(artifacts(seq=seq))
            frames.extend(chunks)
            frames.append(record)
        elif simple_payloads:
            frames.append(make_event(seq, etype))
        else:
            frames.append(draw(events(seq=seq, event_type=etype)))
    return frames
