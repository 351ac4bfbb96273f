"""Property tests of the ingestion loop over arbitrary frame streams: a prefix of valid events followed by one
fault (or none). Whatever the stream, ingestion ends with a classified result, hands the policy exactly the
valid events before the fault, in order, and never raises; the same holds for a policy that takes groups of
events (``ingest_events``), which gets the events that arrived together in one call."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quarry_core.interfaces import PolicyStats
from quarry_core.protocol.codec import FrameReader, encode_frame
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_core.runtime.ingest import MAX_GROUP, Ingestor, RunIdentity
from quarry_core.runtime.metrics import Collector
from quarry_core.runtime.sidecars import SidecarWriter
from quarry_core.testing.fakes import DEFAULT_RUN_ID, make_artifact, make_event

NON_TERMINAL = ["item", "log", "checkpoint", "enqueue"]

# fault → (how it is written after the valid prefix, which result field classifies it)
FAULTS = {
    "none": "",
    "truncated_payload": "stream_error",
    "truncated_prefix": "stream_error",
    "oversized": "stream_error",
    "empty_frame": "stream_error",
    "garbage_cbor": "stream_error",
    "seq_gap": "stream_error",
    "seq_repeat": "stream_error",
    "wrong_run_id": "stream_error",
    "wrong_attempt": "stream_error",
    "bad_payload": "stream_error",
    "unknown_type": "stream_error",
    "version": "version_error",
    "after_terminal": "stream_error",
}


@attrs.define
class RecordingPolicy:
    """Records what reaches the policy; optionally fails on the n-th event."""

    fail_at: int | None = None
    events: list[Event] = attrs.field(factory=list)
    chunks: list[ArtifactChunk] = attrs.field(factory=list)
    name: str = "recording"

    async def ingest_event(self, event: Event) -> None:
        if self.fail_at is not None and len(self.events) + 1 == self.fail_at:
            raise RuntimeError("sink is down")
        self.events.append(event)

    async def ingest_chunk(self, chunk: ArtifactChunk) -> None:
        self.chunks.append(chunk)

    async def flush(self, trigger: str = "termination") -> None:
        pass

    async def close(self) -> None:
        pass

    def stats(self) -> PolicyStats:
        return PolicyStats()


@attrs.define
class GroupingPolicy(RecordingPolicy):
    """Takes groups (``ingest_events``); a failing group persists none of its events."""

    groups: list[list[int]] = attrs.field(factory=list)

    async def ingest_events(self, events: list[Event]) -> None:
        self.groups.append([e.seq for e in events])
        if self.fail_at is not None and len(self.events) < self.fail_at <= len(self.events) + len(events):
            raise RuntimeError("sink is down")
        self.events.extend(events)


POLICIES = [RecordingPolicy, GroupingPolicy]


class _NoStorage:
    async def put_file(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no sidecar frames in these streams")


async def _no_control(frame: Any) -> None:
    pass


def _stream(types: list[str], fault: str, terminal: bool) -> tuple[bytes, list[Event]]:
    """The bytes of the stream and the events that must reach the policy."""
    valid = [make_event(i + 1, t) for i, t in enumerate(types)]
    if terminal:
        valid.append(make_event(len(valid) + 1, "run_complete"))
    data = b"".join(encode_frame(e) for e in valid)
    nxt = len(valid) + 1
    good_next = encode_frame(make_event(nxt))
    tail = {
        "none": b"",
        "truncated_payload": good_next[: len(good_next) // 2],
        "truncated_prefix": good_next[:2],
        "oversized": struct.pack(">I", 16 * 1024 * 1024) + b"\x00" * 16,
        "empty_frame": struct.pack(">I", 0),
        "garbage_cbor": struct.pack(">I", 3) + b"\xff\xfe\xfd",
        "seq_gap": encode_frame(make_event(nxt + 1)),
        "seq_repeat": encode_frame(make_event(max(nxt - 1, 1))) if nxt > 1 else encode_frame(make_event(0)),
        "wrong_run_id": encode_frame(attrs.evolve(make_event(nxt), run_id="someone-else")),
        "wrong_attempt": encode_frame(attrs.evolve(make_event(nxt), attempt=7)),
        "bad_payload": encode_frame(make_event(nxt, "item", {"data": {}})),
        "unknown_type": encode_frame({**make_event(nxt).to_wire(), "type": "teleport"}),
        "version": encode_frame(attrs.evolve(make_event(nxt), contract_version="2.0.0")),
        "after_terminal": good_next if terminal else encode_frame(make_event(nxt + 1)),
    }[fault]
    return data + tail, valid


async def _ingest(data: bytes, policy: RecordingPolicy) -> Any:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    metrics = Collector()
    ingestor = Ingestor(
        identity=RunIdentity(run_id=DEFAULT_RUN_ID, attempt=1),
        policy=policy,
        metrics=metrics,
        sidecars=SidecarWriter(_NoStorage(), metrics, _no_control),  # type: ignore[arg-type]
        send_control=_no_control,
    )
    return await ingestor.run(FrameReader(reader)), metrics


@given(
    types=st.lists(st.sampled_from(NON_TERMINAL), max_size=12),
    fault=st.sampled_from(sorted(FAULTS)),
    terminal=st.booleans(),
)
@pytest.mark.parametrize("kind", POLICIES)
def test_any_stream_ends_classified_with_the_valid_prefix_ingested(
    kind: type[RecordingPolicy], types: list[str], fault: str, terminal: bool
) -> None:
    data, valid = _stream(types, fault, terminal)
    policy = kind()
    result, metrics = asyncio.run(_ingest(data, policy))
    assert [(e.seq, e.type) for e in policy.events] == [(e.seq, e.type) for e in valid]
    assert result.last_seq == len(valid)
    assert result.policy_error is None
    expected = FAULTS[fault]
    if fault == "seq_repeat" and not valid:
        expected = "stream_error"  # seq 0 is a gap too
    if expected == "" or (terminal and fault.startswith(("truncated", "oversized", "empty", "garbage"))):
        # after the terminal event a broken stream end is only a warning; the run's terminal decides
        assert result.stream_error is None and result.version_error is None
    elif expected == "version_error":
        assert result.version_error is not None and result.stream_error is None
    else:
        assert result.stream_error, fault
    assert (result.terminal is not None) == terminal
    assert metrics.get("ipc_frames_received_total") >= len(valid)
    if isinstance(policy, GroupingPolicy):  # the whole stream arrived at once: one group, ending at the terminal
        assert policy.groups == ([[e.seq for e in valid]] if valid else [])


@given(types=st.lists(st.sampled_from(NON_TERMINAL), min_size=1, max_size=12), data=st.data())
def test_a_policy_failure_stops_ingestion_at_that_event(types: list[str], data: st.DataObject) -> None:
    fail_at = data.draw(st.integers(min_value=1, max_value=len(types)))
    stream, valid = _stream(types, "none", terminal=True)
    policy = RecordingPolicy(fail_at=fail_at)
    result, _ = asyncio.run(_ingest(stream, policy))
    assert result.policy_error == "sink is down"
    assert [e.seq for e in policy.events] == [e.seq for e in valid[: fail_at - 1]]
    assert result.terminal is None


@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_escape_classification(blob: bytes) -> None:
    policy = RecordingPolicy()
    result, _ = asyncio.run(_ingest(blob, policy))  # never raises
    if blob:
        assert result.fatal and result.last_error, "non-empty garbage is always a classified stream fault"
    else:
        assert not result.fatal and policy.events == []


@given(types=st.lists(st.sampled_from(NON_TERMINAL), min_size=1, max_size=12), fault=st.sampled_from(sorted(FAULTS)))
def test_a_failed_group_wins_over_the_fault_behind_it(types: list[str], fault: str) -> None:
    """One frame at a time, a policy failure stops the loop before the next frame is read; a group's failure
    likewise hides a fault that arrived behind the group (it counts as never read)."""
    stream, valid = _stream(types, fault, terminal=False)
    policy = GroupingPolicy(fail_at=1)
    result, _ = asyncio.run(_ingest(stream, policy))
    assert result.policy_error == "sink is down"
    assert result.stream_error is None and result.version_error is None
    assert policy.events == [] and policy.groups == [[e.seq for e in valid]]
    assert result.terminal is None


def test_groups_are_bounded_and_end_at_other_frames() -> None:
    n = MAX_GROUP * 2 + 10
    events = [make_event(i + 1) for i in range(n)]
    chunks, record = make_artifact(n + 1, [b"a", b"b"])
    tail = [make_event(n + 2), make_event(n + 3, "run_complete")]
    frames: list[Event | ArtifactChunk] = [*events, *chunks, record, *tail]
    policy = GroupingPolicy()
    result, _ = asyncio.run(_ingest(b"".join(encode_frame(f) for f in frames), policy))
    assert result.terminal is not None and not result.fatal
    # the first group stops at the bound, later ones also where the reader's buffer ends; the chunks split
    assert len(policy.groups[0]) == MAX_GROUP and all(len(g) <= MAX_GROUP for g in policy.groups)
    assert policy.groups[-2][-1] == n and policy.groups[-1] == [n + 1, n + 2, n + 3]
    assert [e.seq for e in policy.events] == list(range(1, n + 4))
    assert policy.chunks == chunks


async def _ingest_as(data: bytes, policy: RecordingPolicy, identity: RunIdentity) -> Any:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    metrics = Collector()
    ingestor = Ingestor(
        identity=identity,
        policy=policy,
        metrics=metrics,
        sidecars=SidecarWriter(_NoStorage(), metrics, _no_control),  # type: ignore[arg-type]
        send_control=_no_control,
    )
    return await ingestor.run(FrameReader(reader))


LINEAGES = [
    None,
    ("job", None, "spawner", 2),
    ("job", None, None, None),
    ("other", None, "spawner", 2),
    (None, None, None, 3),
]


@pytest.mark.parametrize("run_lineage", LINEAGES[:2], ids=["bare-run", "child-run"])
@pytest.mark.parametrize("event_lineage", LINEAGES, ids=["bare", "same", "partial", "other-job", "depth-only"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_group_decides_every_event_like_one_at_a_time(
    run_lineage: tuple[Any, ...] | None, event_lineage: tuple[Any, ...] | None, fault: str
) -> None:
    """The group's fast check of the common item and the full check give the same outcome, message included:
    events with or without this run's lineage, a different one, and every fault behind them."""
    keys = ("job_id", "parent_run_id", "spawned_by_run_id", "depth")
    identity = RunIdentity(run_id=DEFAULT_RUN_ID, attempt=1, **dict(zip(keys, run_lineage or (None,) * 4, strict=True)))
    data, valid = _stream(["item", "item", "log", "item"], fault, terminal=False)
    # the first event carries the run's lineage (it is checked alone), the others the case's
    events = [
        attrs.evolve(e, **dict(zip(keys, (run_lineage if i == 0 else event_lineage) or (None,) * 4, strict=True)))
        for i, e in enumerate(valid)
    ]
    data = b"".join(encode_frame(e) for e in events) + data[len(b"".join(encode_frame(e) for e in valid)) :]

    def outcome(kind: type[RecordingPolicy]) -> Any:
        policy = kind()
        result = asyncio.run(_ingest_as(data, policy, identity))
        return (
            result.stream_error,
            result.version_error and str(result.version_error),
            result.last_seq,
            [e.seq for e in policy.events],
        )

    one, grouped = outcome(RecordingPolicy), outcome(GroupingPolicy)
    assert grouped == one
    ours = run_lineage or (None,) * 4
    if any(got is not None and got != want for got, want in zip(event_lineage or (None,) * 4, ours, strict=True)):
        # a lineage this run does not have: refused at the first event carrying it (the item after the first)
        assert one[0] and "invalid envelope" in one[0] and one[2] == 1
