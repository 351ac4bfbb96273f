"""The read-side CLI over real stored runs (issue 6): ``list``, ``inspect``, ``stats``, ``export``, ``artifacts get``,
``files get`` and ``debug decode`` return what the runs really emitted.

Four real ``quarry run`` subprocesses (a script that navigates nowhere) write one local store: a success with an
escaped source and a captured frame stream, a failure, its successful retry, and a run in another category. The
expected numbers come from the script's own arithmetic (``n`` items + a log + an artifact + the terminal event) and
from the tables read back with the Lode reader, never from the command under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import ROOT, SCRIPTS

SCRIPT = """
import random

from quarry_core import QuarryContext


async def run(ctx: QuarryContext) -> None:
    n = int(ctx.job["n"])
    for i in range(n):
        await ctx.emit.item(
            item_type="row",
            data={"i": i, "name": f"n{i}", "meta": {"even": i % 2 == 0}, "tags": ["a", i], "price": i + 0.5},
        )
    await ctx.emit.info("done", fields={"n": n})
    blob = random.Random(n).randbytes(int(ctx.job.get("size", 5000)))
    await ctx.emit.artifact(name="blob.bin", data=blob, content_type="application/octet-stream")
    await ctx.storage.put("report.json", ('{"n": %d}' % n).encode(), "application/json")
    for params in ctx.job.get("spawn", []):
        await ctx.emit.enqueue(ctx.job["target"], params=params)
    if ctx.job.get("fail"):
        raise RuntimeError("asked to fail")
"""

# run id -> (job, extra args); r3 retries r2
RUNS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "r1": ({"n": 4, "size": 7000}, ["--job-id", "j1", "--source", "shop/eu", "--category", "books"]),
    "r2": ({"n": 2, "fail": True}, ["--job-id", "j2", "--source", "other"]),
    "r3": ({"n": 3}, ["--job-id", "j2", "--source", "other", "--attempt", "2", "--parent-run-id", "r2"]),
    "r4": ({"n": 5}, ["--source", "other", "--category", "toys"]),
}


def expected_events(run_id: str) -> int:
    return int(RUNS[run_id][0]["n"]) + 3  # items, a log, an artifact, the terminal event


def quarry_run(script: Path, storage: str, run_id: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    job, args = RUNS[run_id]
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", str(script), "--storage-path", storage]
    cmd += ["--run-id", run_id, "--job", json.dumps(job), *args, *extra]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})}
    )


def run_all(script: Path, storage: str, extra: dict[str, list[str]], env: dict[str, str] | None = None) -> None:
    # r2 first (its retry r3 must start later), the others alongside; r5 fans out into dataset "fan"
    first = quarry_run(script, storage, "r2", *extra.get("r2", []), env=env)
    first.wait(120)
    procs = {rid: quarry_run(script, storage, rid, *extra.get(rid, []), env=env) for rid in ("r1", "r3", "r4")}
    fan_job = {"n": 1, "target": str(script), "spawn": [{"n": 1}, {"n": 2}]}
    fan_args = ["--storage-dataset", "fan", "--run-id", "r5", "--job", json.dumps(fan_job), "--source", "fan"]
    fan_args += ["--depth", "1", "--max-runs", "5", "--parallel", "2", "--no-warm-executors"]
    procs["r5"] = subprocess.Popen(
        [sys.executable, "-m", "quarry_core.cli", "run", str(script), "--storage-path", storage, *fan_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    codes = {rid: p.wait(120) for rid, p in procs.items()} | {"r2": first.returncode}
    assert codes == {"r1": 0, "r2": 1, "r3": 0, "r4": 0, "r5": 0}, {
        rid: p.stderr.read() if p.stderr else "" for rid, p in (procs | {"r2": first}).items()
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("read-cli")
    script = base / "reads.py"
    script.write_text(SCRIPT)
    storage = base / "data"
    run_all(script, str(storage), {"r1": ["--capture-frames", str(base / "r1.frames")]})
    return storage


def cli(capsys: pytest.CaptureFixture[str], *args: str, storage: Path | str | None = None) -> tuple[int, str, str]:
    from quarry_core.cli import main

    argv = list(args)
    if storage is not None:
        argv += ["--storage-path", str(storage)]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str, storage: Path | str | None = None) -> Any:
    code, out, err = cli(capsys, *args, storage=storage)
    assert code == 0, err
    return json.loads(out)


def table(storage: Path, name: str, **filters: str) -> list[dict[str, Any]]:
    from quarry_lode import open_dataset

    return open_dataset(str(storage)).read(name, **filters).to_pylist(maps_as_pydicts="strict")


# --------------------------------------------------------------------------------------------------- list


def test_list_runs_newest_first_with_true_states(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = cli_json(capsys, "list", "runs", storage=store)
    assert [r["run_id"] for r in rows][-1] == "r2"  # r2 ran first
    assert {r["run_id"]: (r["state"], r["outcome"], r["job_id"]) for r in rows} == {
        "r1": ("succeeded", "success", "j1"),
        "r2": ("failed", "script_error", "j2"),
        "r3": ("succeeded", "success", "j2"),
        "r4": ("succeeded", "success", None),
    }
    assert list(rows[0]) == ["run_id", "state", "outcome", "job_id", "source", "category", "started_at", "duration_ms"]
    started = [r["started_at"] for r in rows]
    assert started == sorted(started, reverse=True)
    r1 = next(r for r in rows if r["run_id"] == "r1")
    assert (r1["source"], r1["category"]) == ("shop/eu", "books")  # escaped on disk, plain here
    stored = {r["run_id"]: r for r in table(store, "runs") if r["state"] != "running"}
    assert r1["duration_ms"] == stored["r1"]["duration_ms"] > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--state", "failed"], ["r2"]),
        (["--source", "other"], ["r4", "r3", "r2"]),
        (["--source", "other", "--category", "toys"], ["r4"]),
        (["--source", "shop/eu"], ["r1"]),
        (["--job-id", "j2"], ["r3", "r2"]),
        (["--since", "1h", "--state", "succeeded", "--source", "other"], ["r4", "r3"]),
        (["--since", "2999-01-01"], []),
    ],
)
def test_list_runs_filters(
    store: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]
) -> None:
    rows = cli_json(capsys, "list", "runs", *args, storage=store)
    assert sorted(r["run_id"] for r in rows) == sorted(expected)


def test_list_runs_limit_keeps_the_newest(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    everything = cli_json(capsys, "list", "runs", storage=store)
    assert cli_json(capsys, "list", "runs", "--limit", "2", storage=store) == everything[:2]


def test_list_jobs(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = cli_json(capsys, "list", "jobs", storage=store)
    assert {r["job_id"]: (r["state"], r["runs"], r["latest_run_id"]) for r in rows} == {
        "j1": ("succeeded", 1, "r1"),
        "j2": ("succeeded", 2, "r3"),
    }


def test_list_pools_from_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "quarry.toml"
    cfg.write_text(
        '[proxies.eu]\nstrategy = "round_robin"\n'
        'endpoints = [{protocol = "http", host = "10.0.0.1", port = 8080}, '
        '{protocol = "http", host = "10.0.0.2", port = 8080}]\n'
    )
    rows = cli_json(capsys, "list", "pools", "--config", str(cfg))
    assert rows == [{"name": "eu", "strategy": "round_robin", "endpoint_count": 2}]


def test_list_plugins_lists_the_installed_policies(capsys: pytest.CaptureFixture[str]) -> None:
    rows = cli_json(capsys, "list", "plugins", "--kind", "ingestion_policy")
    assert {r["name"] for r in rows} >= {"strict", "buffered", "streaming"}


# --------------------------------------------------------------------------------------------------- inspect


def test_inspect_run_counts_artifacts_and_files_match_the_store(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = cli_json(capsys, "inspect", "run", "r1", storage=store)
    events = table(store, "events", run_id="r1")
    assert data["event_count"] == expected_events("r1") == len(events)
    assert data["events"]["persisted"] == data["events"]["received"] == len(events)
    assert data["events"]["dropped"] == 0
    commits = [e for e in events if e["record_kind"] == "artifact_event"]
    assert [a["artifact_id"] for a in data["artifacts"]["items"]] == [c["artifact_id"] for c in commits]
    assert data["artifacts"]["items"][0]["size_bytes"] == 7000 == data["artifacts"]["bytes"]
    assert data["artifacts"]["committed"] == 1 and data["artifacts"]["orphaned"] == 0
    assert [f["filename"] for f in data["sidecar_files"]] == ["report.json"]
    assert data["sidecar_files"][0]["size"] == len(b'{"n": 4}')
    assert (data["source"], data["category"], data["outcome"], data["exit_code"]) == ("shop/eu", "books", "success", 0)
    assert data["ipc"]["frames_received"] > data["event_count"]  # events plus the artifact chunk and file frames
    assert data["children"] == [] and data["retries"] == []
    assert data["stop_reason"] == "terminal"


def test_inspect_run_lineage_of_a_retry(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    retry = cli_json(capsys, "inspect", "run", "r3", storage=store)
    assert (retry["attempt"], retry["parent_run_id"]) == (2, "r2")
    tree = retry["lineage"]
    assert (tree["run_id"], tree["relation"], tree["outcome"]) == ("r2", "root", "script_error")
    assert [(c["run_id"], c["relation"], c["state"]) for c in tree["children"]] == [("r3", "retry", "succeeded")]
    first = cli_json(capsys, "inspect", "run", "r2", storage=store)
    assert [r["run_id"] for r in first["retries"]] == ["r3"]
    assert first["state"] == "failed" and first["error_type"] and "asked to fail" in first["message"]
    assert first["event_count"] == expected_events("r2")


def test_inspect_run_lineage_of_a_fan_out(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fan = ["--storage-dataset", "fan"]
    root = cli_json(capsys, "inspect", "run", "r5", *fan, storage=store)
    assert root["event_count"] == 6  # an item, a log, an artifact, two enqueues, the terminal event
    children = root["children"]
    assert len(children) == 2 and {c["depth"] for c in children} == {1}
    assert sorted(c["event_count"] for c in children) == [4, 5]  # the n=1 and n=2 children
    assert [(c["relation"], c["state"]) for c in root["lineage"]["children"]] == [("child", "succeeded")] * 2
    child = cli_json(capsys, "inspect", "run", children[0]["run_id"], *fan, storage=store)
    assert (child["spawned_by_run_id"], child["root_run_id"], child["depth"]) == ("r5", "r5", 1)
    assert child["lineage"]["run_id"] == "r5"
    listed = cli_json(capsys, "list", "runs", *fan, storage=store)
    assert sorted(r["run_id"] for r in listed) == sorted(["r5", *(c["run_id"] for c in children)])
    assert cli_json(capsys, "stats", "runs", *fan, storage=store)["total"] == 3


def test_inspect_job(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = cli_json(capsys, "inspect", "job", "j2", storage=store)
    assert (data["state"], data["latest_run_id"], data["attempts"]) == ("succeeded", "r3", 2)
    assert [(r["run_id"], r["attempt"], r["parent_run_id"], r["outcome"]) for r in data["runs"]] == [
        ("r2", 1, None, "script_error"),
        ("r3", 2, "r2", "success"),
    ]


def test_not_found_exits_1(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "inspect", "run", "r9", storage=store)
    assert (code, out) == (1, "") and err.endswith("Error: run not found: r9\n")
    code, out, err = cli(capsys, "inspect", "job", "nope", storage=store)
    assert (code, out) == (1, "") and err.endswith("Error: job not found: nope\n")


# --------------------------------------------------------------------------------------------------- stats


def test_stats_runs_and_jobs(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = cli_json(capsys, "stats", "runs", storage=store)
    assert {k: data[k] for k in ("total", "running", "succeeded", "failed", "canceled")} == {
        "total": 4,
        "running": 0,
        "succeeded": 3,
        "failed": 1,
        "canceled": 0,
    }
    assert data["by_outcome"] == {"script_error": 1, "success": 3}
    assert data["events_persisted"] == sum(expected_events(r) for r in RUNS) == len(table(store, "events"))
    assert data["artifacts_committed"] == 4
    other = cli_json(capsys, "stats", "runs", "--source", "other", "--category", "default", storage=store)
    assert (other["total"], other["failed"]) == (2, 1)
    assert cli_json(capsys, "stats", "runs", "--until", "2000-01-01", storage=store)["total"] == 0
    jobs = cli_json(capsys, "stats", "jobs", storage=store)
    assert jobs == {"total": 2, "running": 0, "succeeded": 2, "failed": 0, "canceled": 0}


def test_stats_metrics_newest_and_aggregate(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = cli_json(capsys, "stats", "metrics", "--run-id", "r4", storage=store)
    assert not {"source", "category", "day", "run_id", "event_type"} & set(one)
    assert one["events_persisted_total"] == expected_events("r4")
    assert one["runs_completed_total"] == 1 and one["policy"] == "strict"
    agg = cli_json(capsys, "stats", "metrics", "--aggregate", storage=store)
    assert agg["runs"] == 4
    assert agg["events_persisted_total"] == sum(expected_events(r) for r in RUNS)
    assert (agg["runs_completed_total"], agg["runs_failed_total"]) == (3, 1)
    scoped = cli_json(capsys, "stats", "metrics", "--aggregate", "--source", "other", storage=store)
    assert scoped["runs"] == 3 and scoped["events_persisted_total"] == sum(
        expected_events(r) for r in ("r2", "r3", "r4")
    )


def test_executor_commands(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = cli_json(capsys, "stats", "executors", storage=store)
    assert [(r["executor"], r["runs"], r["running"], r["crashes"], r["launch_failures"]) for r in rows] == [
        ("playwright", 4, 0, 0, 0)
    ]
    newest = cli_json(capsys, "list", "runs", "--limit", "1", storage=store)[0]["started_at"]
    assert rows[0]["last_used_at"] == newest
    one = cli_json(capsys, "inspect", "executor", "playwright", storage=store)
    assert (one["name"], one["distribution"], one["runs"]) == ("playwright", "quarry-executor", 4)
    assert {"name": "playwright", "distribution": "quarry-executor"}.items() <= cli_json(capsys, "list", "executors")[
        0
    ].items()
    code, _, err = cli(capsys, "inspect", "executor", "nope", storage=store)
    assert code == 1 and 'unknown executor "nope"' in err


def test_debug_ipc_reports_the_run_record(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ipc = cli_json(capsys, "debug", "ipc", "--run-id", "r1", "--verbose", storage=store)
    stored = next(r for r in table(store, "runs", run_id="r1") if r["state"] != "running")["ipc"]
    assert (ipc["frames_received"], ipc["bytes_received"], ipc["decode_errors"]) == (
        stored["frames_received"],
        stored["bytes_received"],
        0,
    )
    assert (ipc["transport"], ipc["encoding"], ipc["framing"]) == ("stdio", "cbor", "u32be-length")
    assert ipc["limits"]["max_frame_size"] == 16 * 1024 * 1024
    newest = cli_json(capsys, "list", "runs", "--limit", "1", storage=store)[0]["run_id"]
    assert cli_json(capsys, "debug", "ipc", storage=store)["run_id"] == newest


# --------------------------------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_loads_in_duckdb_and_pyarrow(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    import duckdb

    out = tmp_path / f"items.{fmt}"
    code, _, err = cli(capsys, "export", "--source", "other", "-o", str(out), storage=store)
    assert code == 0, err
    n = sum(int(RUNS[r][0]["n"]) for r in ("r2", "r3", "r4"))
    assert f"exported {n} items" in err
    reader = {"parquet": "read_parquet", "csv": "read_csv_auto", "jsonl": "read_json_auto"}[fmt]
    rows = duckdb.sql(f"SELECT * FROM {reader}('{out}')")
    assert rows.shape[0] == n
    if fmt == "jsonl":
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert {x["data"]["name"] for x in lines if x["run_id"] == "r4"} == {f"n{i}" for i in range(5)}
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(out)
    else:
        import pyarrow.csv as pcsv

        t = pcsv.read_csv(out)
    assert t.num_rows == n
    cols = t.column_names
    assert cols[:8] == ["run_id", "source", "category", "day", "seq", "event_id", "ts", "item_type"]
    assert {"data.i", "data.name", "data.meta.even", "data.tags", "data.price"} <= set(cols)
    r4 = [r for r in t.to_pylist() if r["run_id"] == "r4"]
    assert sorted(r["data.i"] for r in r4) == list(range(5))
    assert {r["data.meta.even"] for r in r4} == {True, False}
    assert json.loads(r4[0]["data.tags"])[0] == "a"
    total = duckdb.sql(f"SELECT sum(\"data.price\") FROM {reader}('{out}') WHERE run_id = 'r4'").fetchall()
    assert total == [(sum(i + 0.5 for i in range(5)),)]


def test_export_one_run_and_a_category(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "r1.parquet"
    assert cli(capsys, "export", "--run", "r1", "-o", str(out), storage=store)[0] == 0
    t = pq.read_table(out)
    assert t.num_rows == 4 and set(t.column("source").to_pylist()) == {"shop/eu"}
    assert t.column("seq").to_pylist() == [1, 2, 3, 4]
    out2 = tmp_path / "toys.jsonl"
    assert cli(capsys, "export", "--source", "other", "--category", "toys", "-o", str(out2), storage=store)[0] == 0
    assert len(out2.read_text().splitlines()) == 5
    # an existing file is kept unless --force
    code, _, err = cli(capsys, "export", "--run", "r1", "-o", str(out), storage=store)
    assert code == 4 and "output file exists" in err


# --------------------------------------------------------------------------------------------------- files


def test_artifacts_get_reassembles_the_bytes(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = cli_json(capsys, "artifacts", "list", "r1", storage=store)
    assert [(i["name"], i["size_bytes"]) for i in items] == [("blob.bin", 7000)]
    out = tmp_path / "blob.bin"
    code, _, err = cli(capsys, "artifacts", "get", "r1", items[0]["artifact_id"], "-o", str(out), storage=store)
    assert code == 0, err
    assert out.read_bytes() == random.Random(4).randbytes(7000)
    code, _, err = cli(
        capsys,
        "artifacts",
        "get",
        "r1",
        "00000000-0000-0000-0000-000000000000",
        "-o",
        str(tmp_path / "x"),
        storage=store,
    )
    assert code == 1 and "not found" in err and not (tmp_path / "x").exists()


def test_files_get_downloads_a_sidecar(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    code, _, err = cli(capsys, "files", "get", "r3", "report.json", "-o", str(out), storage=store)
    assert code == 0, err
    assert json.loads(out.read_text()) == {"n": 3}
    names = {f["filename"] for f in cli_json(capsys, "files", "list", "r2", storage=store)}
    assert "report.json" in names
    code, _, err = cli(capsys, "files", "get", "r3", "nope.txt", "-o", str(tmp_path / "n"), storage=store)
    assert code == 1 and "file not found: nope.txt" in err and "report.json" in err


# --------------------------------------------------------------------------------------------------- debug decode


def test_capture_frames_and_debug_decode(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = store.parent / "r1.frames"
    code, out, err = cli(capsys, "debug", "decode", str(frames))
    assert code == 0, err
    decoded = [json.loads(line) for line in out.splitlines()]
    inspected = cli_json(capsys, "inspect", "run", "r1", storage=store)
    assert len(decoded) == inspected["ipc"]["frames_received"]
    events = [d for d in decoded if "seq" in d and d.get("type") not in ("artifact_chunk", "file_write")]
    assert [e["seq"] for e in events] == list(range(1, expected_events("r1") + 1))
    assert [e["type"] for e in events][-1] == "run_complete"
    chunk = next(d for d in decoded if d["type"] == "artifact_chunk")
    assert chunk["data"] == {"$bytes": 7000}
    # a stream cut inside a frame: the valid frames, then exit 1 naming the bad one
    broken = store.parent / "broken.frames"
    raw = frames.read_bytes()
    broken.write_bytes(raw[: len(raw) - 3])
    code, out, err = cli(capsys, "debug", "decode", str(broken))
    assert code == 1 and len(out.splitlines()) == len(decoded) - 1
    assert f"frame {len(decoded)}: truncated frame" in err


# --------------------------------------------------------------------------------------------------- formats


def test_yaml_and_table_show_the_same_data(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    for args in (["inspect", "job", "j2"], ["inspect", "run", "r3"], ["list", "runs"]):
        as_json = cli_json(capsys, *args, storage=store)
        code, out, _ = cli(capsys, *args, "-f", "YAML", storage=store)
        assert code == 0 and yaml.safe_load(out) == as_json
    code, out, _ = cli(capsys, "list", "runs", "--format", "table", "--no-color", storage=store)
    assert code == 0 and "\x1b[" not in out
    assert out.splitlines()[0].split() == [
        "run_id",
        "state",
        "outcome",
        "job_id",
        "source",
        "category",
        "started_at",
        "duration_ms",
    ]
    assert len(out.splitlines()) == 1 + len(RUNS)
    code, out, _ = cli(capsys, "list", "runs", "--state", "canceled", "-f", "table", storage=store)
    assert out == "(no results)\n"


# --------------------------------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "runs", "--format", "xml"], 'invalid format: "xml" (must be json, table, or yaml)'),
        (["list", "runs", "--tui"], "--tui is not supported for list commands"),
        (["stats", "runs", "--tui"], "--tui requires a terminal"),
        (["list", "runs", "--state", "done"], 'invalid --state "done"'),
        (["list", "runs", "--since", "yesterday"], 'invalid --since "yesterday"'),
        (["export", "--run", "r1", "--source", "x", "-o", "o.csv"], "give exactly one of --run RUN_ID or --source"),
        (["export", "--run", "r1"], "missing --output/-o PATH"),
        (["export", "--run", "r1", "-o", "out.txt"], "cannot tell the export format"),
        (["export", "--run", "r1", "-o", "-", "--format", "parquet"], "parquet cannot be written to stdout"),
        (["list", "runs", "--storage-option", "novalue"], 'invalid --storage-option "novalue"'),
        (["list", "runs", "--limit", "-1"], "Invalid value for '--limit'"),
        (["run", str(SCRIPTS / "ok.py"), "--capture-frames", "/nonexistent/dir/f.bin"], "--capture-frames: directory"),
    ],
)
def test_usage_errors_exit_4(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    os.chdir(tmp_path)
    code, out, err = cli(capsys, *argv, storage=store)
    assert code == 4, err
    assert message in err
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_missing_dataset_exits_1_and_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "nothing-here"
    code, out, err = cli(capsys, "list", "runs", storage=target)
    assert (code, out) == (1, "")
    assert f"no dataset at {target}" in err
    assert not target.exists()


def test_read_commands_never_write(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in store.rglob("*")}

    before = snapshot()
    for argv in (
        ["list", "runs"],
        ["list", "jobs"],
        ["inspect", "run", "r1"],
        ["inspect", "job", "j2"],
        ["stats", "runs"],
        ["stats", "jobs"],
        ["stats", "metrics"],
        ["files", "list", "r1"],
        ["export", "--source", "other", "-o", str(tmp_path / "x.parquet")],
    ):
        assert cli(capsys, *argv, storage=store)[0] == 0
    assert snapshot() == before


def test_storage_path_from_the_environment_and_the_config_file(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quarry.toml").write_text(f'[storage]\npath = "{store}"\n')
    assert len(cli_json(capsys, "list", "runs")) == 4
    monkeypatch.setenv("QUARRY_STORAGE_PATH", str(tmp_path / "elsewhere"))
    assert cli(capsys, "list", "runs")[0] == 1  # environment beats the config file
    assert cli(capsys, "list", "runs", "--no-config", "--storage-path", str(store))[0] == 0


# --------------------------------------------------------------------------------------------------- TUI


def test_tui_shows_the_inspect_payload_and_quits_on_q(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from textual.widgets import Tree

    from quarry_core.cli.tui import PayloadApp

    payload = cli_json(capsys, "inspect", "run", "r1", storage=store)

    async def drive() -> tuple[Any, list[str]]:
        app = PayloadApp(payload, "run r1")
        async with app.run_test() as pilot:
            tree = app.query_one(Tree)
            labels: list[str] = []

            def walk(node: Any) -> None:
                labels.append(str(node.label))
                for child in node.children:
                    walk(child)

            walk(tree.root)
            await pilot.press("q")
        return app.return_value, labels

    code, labels = asyncio.run(drive())
    assert code == 0
    assert "run_id: r1" in labels and "source: shop/eu" in labels
    assert f"event_count: {expected_events('r1')}" in labels
    assert "sidecar_files [1 items]" in labels
    assert len([x for x in labels if x.startswith("filename: ")]) == 1


def test_tui_ctrl_c_quits_with_0() -> None:
    from quarry_core.cli.tui import PayloadApp

    async def drive() -> Any:
        app = PayloadApp({"total": 1}, "stats runs")
        async with app.run_test() as pilot:
            await pilot.press("ctrl+c")
        return app.return_value

    assert asyncio.run(drive()) == 0


# --------------------------------------------------------------------------------------------------- docs


def load_generator() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documented_keys(shape: str) -> list[str] | None:
    inner = shape.strip("[]").strip("{}")
    return None if "<" in inner or "…" in inner else [k.strip() for k in inner.split(",")]


def test_json_keys_match_the_reference_page(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    responses = load_generator().RESPONSES
    args = {
        "list runs": [],
        "list jobs": [],
        "inspect run": ["r1"],
        "inspect job": ["j1"],
        "stats runs": [],
        "stats jobs": [],
        "artifacts list": ["r1"],
        "files list": ["r1"],
        "list plugins": [],
        "list executors": [],
        "inspect executor": ["playwright"],
        "stats executors": [],
        "debug ipc": ["--run-id", "r1"],
    }
    for path, extra in args.items():
        keys = _documented_keys(responses[path][0])
        assert keys is not None, path
        local = path in ("list plugins", "list executors")
        data = cli_json(capsys, *path.split(), *extra, storage=None if local else store)
        obj = data[0] if isinstance(data, list) else data
        assert list(obj) == keys, path


def test_reference_page_is_generated_from_the_app() -> None:
    page = ROOT / "docs" / "reference" / "cli.md"
    assert page.read_text(encoding="utf-8") == load_generator().render(), (
        "docs/reference/cli.md is out of date: run `uv run --frozen python scripts/gen_cli_docs.py`"
    )


# --------------------------------------------------------------------------------------------------- S3 (moto)

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Run r1 written to a moto S3 server on 127.0.0.1; yields (storage URL, endpoint)."""
    import boto3
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for key, value in S3_CREDENTIALS.items():
        mp.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="reads")
    base = tmp_path_factory.mktemp("read-cli-s3")
    script = base / "reads.py"
    script.write_text(SCRIPT)
    url = "s3://reads/crawls"
    proc = quarry_run(script, url, "r1", "--storage-endpoint", endpoint, env=S3_CREDENTIALS)
    assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    yield url, endpoint
    server.stop()
    mp.undo()


def test_s3_reads_return_the_true_numbers(
    s3_store: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    url, endpoint = s3_store
    opts = ["--storage-path", url, "--storage-endpoint", endpoint]
    rows = cli_json(capsys, "list", "runs", *opts)
    assert [(r["run_id"], r["state"], r["source"]) for r in rows] == [("r1", "succeeded", "shop/eu")]
    data = cli_json(capsys, "inspect", "run", "r1", *opts)
    assert data["event_count"] == expected_events("r1") and data["storage_backend"] == "s3"
    assert [f["filename"] for f in data["sidecar_files"]] == ["report.json"]
    stats = cli_json(capsys, "stats", "runs", *opts)
    assert (stats["total"], stats["succeeded"], stats["events_persisted"]) == (1, 1, expected_events("r1"))
    out = tmp_path / "all.parquet"
    assert cli(capsys, "export", "--source", "shop/eu", "-o", str(out), *opts)[0] == 0
    assert pq.read_table(out).column("data.i").to_pylist() == [0, 1, 2, 3]
    blob = tmp_path / "blob.bin"
    aid = data["artifacts"]["items"][0]["artifact_id"]
    assert cli(capsys, "artifacts", "get", "r1", aid, "-o", str(blob), *opts)[0] == 0
    assert blob.read_bytes() == random.Random(4).randbytes(7000)
    report = tmp_path / "report.json"
    assert cli(capsys, "files", "get", "r1", "report.json", "-o", str(report), *opts)[0] == 0
    assert json.loads(report.read_text()) == {"n": 4}


def test_s3_missing_dataset_exits_1(s3_store: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, endpoint = s3_store
    code, out, err = cli(capsys, "list", "runs", "--storage-path", "s3://reads/empty", "--storage-endpoint", endpoint)
    assert (code, out) == (1, "") and "no dataset at s3://reads/empty" in err
