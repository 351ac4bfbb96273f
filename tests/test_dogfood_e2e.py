"""Dogfooding (seed Phase 6): ``examples/dogfood/crawl.py`` under ``strict`` and under ``buffered`` stores the same
crawl. Same partitions, same envelopes (apart from run ids, event ids, artifact ids and timestamps), same order; the
only allowed difference is a counted drop, and every drop shows in the metrics record and in the summary."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from e2e_helpers import ROOT, read_table, run_id_from

pytestmark = pytest.mark.browser

DOGFOOD = ROOT / "examples" / "dogfood" / "crawl.py"
DROPPABLE = {"log", "enqueue", "rotate_proxy"}


def _normalised(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The envelope without what differs between two runs of one script: run id, event id, timestamp, artifact
    ids (random per run; replaced by their order of appearance) and the ``policy`` column Lode adds."""
    artifact_ids: dict[str, str] = {}
    out = []
    for row in rows:
        payload = json.loads(row["payload"])
        if "artifact_id" in payload:
            payload["artifact_id"] = artifact_ids.setdefault(payload["artifact_id"], f"artifact-{len(artifact_ids)}")
        keep = {k: v for k, v in row.items() if k not in {"run_id", "event_id", "ts", "policy", "artifact_id"}}
        keep["payload"] = payload
        out.append(keep)
    return out


def _artifact_bytes(storage: Any, run_id: str) -> dict[str, bytes]:
    chunks = sorted(read_table(storage, "chunks", run_id=run_id), key=lambda r: (r["artifact_id"], r["seq"]))
    names = {
        r["artifact_id"]: r["name"]
        for r in read_table(storage, "events", run_id=run_id)
        if r["event_type"] == "artifact"
    }
    out: dict[str, bytes] = {}
    for c in chunks:
        out[names[c["artifact_id"]]] = out.get(names[c["artifact_id"]], b"") + c["data"]
    return out


def _commits(storage: Any, run_id: str) -> list[list[int]]:
    """The seqs of each events snapshot of a run, in commit order; asserts rows inside each file are in seq order."""
    import pyarrow.parquet as pq

    from quarry_lode import open_dataset

    ds = open_dataset(str(storage))
    by_snapshot: dict[str, list[int]] = {}
    for f in ds.files("events", run_id=run_id):
        with ds.fs.open(f.path, "rb") as fh:
            seqs = pq.read_table(fh, columns=["seq"]).column("seq").to_pylist()
        assert seqs == sorted(seqs), f"rows of {f.path} are not in seq order"
        by_snapshot.setdefault(f.snapshot_id, []).extend(seqs)
    commits = [sorted(seqs) for seqs in by_snapshot.values()]
    for earlier, later in itertools.pairwise(commits):
        assert earlier[-1] < later[0], "a later snapshot holds an earlier seq"
    return commits


def _summary_drops(stdout: str) -> tuple[int, dict[str, int]]:
    total = int(re.search(r"^Events Dropped: (\d+)", stdout, re.M).group(1))  # type: ignore[union-attr]
    by_type = {t: int(n) for t, n in re.findall(r"^events_dropped\{type=(\w+)\}: (\d+)$", stdout, re.M)}
    return total, by_type


def test_strict_and_buffered_store_the_same_crawl(quarry, site_url, storage):
    job = {"url": f"{site_url}/index.html"}
    common = ("--source", "dogfood", "--category", "shop")
    strict = quarry(DOGFOOD, *common, "--policy", "strict", job=job)
    assert strict.code == 0, strict.stderr
    # a small buffer, so a drop under pressure is possible; whatever drops must be accounted for
    buffered = quarry(DOGFOOD, *common, "--policy", "buffered", "--buffer-events", "8", "--batch-events", "4", job=job)
    assert buffered.code == 0, buffered.stderr
    sid, bid = run_id_from(strict.stdout), run_id_from(buffered.stdout)

    s_rows = sorted(read_table(storage, "events", run_id=sid), key=lambda r: r["seq"])
    b_rows = sorted(read_table(storage, "events", run_id=bid), key=lambda r: r["seq"])
    assert [r["seq"] for r in s_rows] == list(range(1, len(s_rows) + 1))
    # identical order: in both runs the commits hold ascending, non-overlapping seq ranges (rows inside each file
    # in seq order), so the stored order is the seq order; strict commits each group of events that arrived
    # together (one at a time when the script is slower than a commit)
    s_commits, b_commits = _commits(storage, sid), _commits(storage, bid)
    assert [seq for commit in s_commits for seq in commit] == [r["seq"] for r in s_rows]
    assert all(commit == list(range(commit[0], commit[-1] + 1)) for commit in s_commits)
    assert [seq for commit in b_commits for seq in commit] == [r["seq"] for r in b_rows]
    assert len(b_commits) > 1
    assert {r["policy"] for r in s_rows} == {"strict"} and {r["policy"] for r in b_rows} == {"buffered"}

    # identical partitions (run_id aside)
    def keys(rows: list[dict[str, Any]]) -> set[tuple[str, ...]]:
        return {(r["source"], r["category"], r["day"], r["event_type"]) for r in rows}

    assert keys(s_rows) == keys(b_rows) | {
        ("dogfood", "shop", r["day"], r["event_type"]) for r in s_rows if r["event_type"] in DROPPABLE
    }
    assert {k[3] for k in keys(b_rows)} >= {"item", "checkpoint", "artifact", "run_complete"}

    # identical envelopes, except the events buffered dropped
    b_seqs = {r["seq"] for r in b_rows}
    dropped = [r for r in s_rows if r["seq"] not in b_seqs]
    assert all(r["event_type"] in DROPPABLE for r in dropped), "only droppable events may be missing"
    kept = [r for r in s_rows if r["seq"] in b_seqs]
    assert _normalised(kept) == _normalised(b_rows)
    assert len([r for r in b_rows if r["event_type"] == "item"]) == 12
    assert _artifact_bytes(storage, sid) == _artifact_bytes(storage, bid)
    assert json.loads(_artifact_bytes(storage, bid)["catalogue.json"])[0]["sku"] == "QS-001"

    # every drop is visible in the metrics record and the summary, with the same numbers
    dropped_by_type: dict[str, int] = {}
    for r in dropped:
        dropped_by_type[r["event_type"]] = dropped_by_type.get(r["event_type"], 0) + 1
    for run_id, res, expected in ((sid, strict, {}), (bid, buffered, dropped_by_type)):
        (m,) = read_table(storage, "metrics", run_id=run_id)
        assert m["events_dropped_total"] == sum(expected.values())
        assert dict(m["dropped_by_type"] or {}) == expected
        assert m["events_received_total"] == len(s_rows)
        assert m["events_persisted_total"] == len(s_rows) - sum(expected.values())
        assert m["events_unflushed_total"] == 0
        assert _summary_drops(res.stdout) == (sum(expected.values()), expected)
        assert f"events_dropped_total: {sum(expected.values())}" in res.stdout
    (bm,) = read_table(storage, "metrics", run_id=bid)
    assert 0 < bm["buffer_high_water_events"] <= 8
    assert bm["policy_flushes_total"] == sum(dict(bm["flush_triggers"]).values()) >= 2  # batches during the run
    assert "Buffer High Water: " in buffered.stdout
