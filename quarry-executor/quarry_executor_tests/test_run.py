"""End-to-end runs of ``python -m quarry_executor`` with real Chromium: success, errors, terminals, guard."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from quarry_core.protocol import Event, RunResult, parse_executor_frame

pytestmark = pytest.mark.browser

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check_contract(frames: list[dict[str, Any]]) -> None:
    """Every frame passes the runtime's own decoder; envelope seqs are 1..n."""
    seqs = []
    for f in frames:
        parsed = parse_executor_frame(f)
        if isinstance(parsed, Event):
            seqs.append(parsed.seq)
    assert seqs == list(range(1, len(seqs) + 1))


def test_success_items_auto_complete(execute: Any, site: str) -> None:
    res = execute(
        """
        async def run(ctx):
            await ctx.page.goto(ctx.job["url"])
            for li in await ctx.page.query_selector_all("li.p"):
                await ctx.emit.item("product", {"sku": await li.get_attribute("data-sku"),
                                                "name": await li.inner_text()})
        """,
        job={"url": f"{site}/index.html"},
    )
    assert res.code == 0, res.stderr
    assert res.types == ["item", "item", "item", "run_complete", "run_result"]
    assert [p["data"]["sku"] for p in res.items] == ["A1", "B2", "C3"]
    check_contract(res.frames)
    for ev in res.events:
        assert ev["contract_version"] == "1.0.0"
        assert uuid.UUID(ev["event_id"]).version == 4
        assert ev["run_id"] == "run-1" and ev["attempt"] == 1 and ev["job_id"] == "job-7"
        assert TS_RE.match(ev["ts"])
        for absent in ("parent_run_id", "spawned_by_run_id", "depth"):
            assert absent not in ev
    assert len({ev["event_id"] for ev in res.events}) == 4
    assert res.terminal["payload"] == {}
    assert res.outcome == {"status": "completed", "message": "run completed"}
    assert RunResult.from_wire(res.frames[-1]).run_id == "run-1"


def test_lineage_keys_of_a_retry_child(execute: Any) -> None:
    res = execute(
        """
        async def run(ctx):
            r = ctx.run
            await ctx.emit.item("run", {"attempt": r.attempt, "parent": r.parent_run_id,
                                        "spawned_by": r.spawned_by_run_id, "depth": r.depth})
        """,
        attempt=2,
        parent_run_id="run-0",
        spawned_by_run_id="root-9",
        depth=2,
        job_id=None,
    )
    assert res.code == 0, res.stderr
    ev = res.events[0]
    assert (ev["attempt"], ev["parent_run_id"], ev["spawned_by_run_id"], ev["depth"]) == (2, "run-0", "root-9", 2)
    assert "job_id" not in ev
    assert res.item("run") == {"attempt": 2, "parent": "run-0", "spawned_by": "root-9", "depth": 2}


def test_script_raising_gives_auto_run_error(execute: Any) -> None:
    res = execute(
        """
        async def run(ctx):
            await ctx.emit.item("before", {})
            raise ValueError("price missing")
        """
    )
    assert res.code == 1, res.stderr
    # the error snapshot (screenshot + HTML) is written and acked before the terminal event
    assert res.types == ["item", "file_write", "file_write", "run_error", "run_result"]
    payload = res.terminal["payload"]
    assert payload["error_type"] == "script_error"
    assert payload["message"] == "price missing"
    shot, html = res.files
    assert (shot.filename, shot.content_type) == ("quarry-error-screenshot.png", "image/png")
    assert shot.data.startswith(b"\x89PNG")
    assert html.filename == "quarry-error-page.html" and b"<html" in html.data
    assert payload["error_snapshot"] == {
        "screenshot": {
            "filename": shot.filename,
            "key": f"datasets/quarry/files/run_id=run-1/{shot.filename}",
            "size": len(shot.data),
        },
        "html": {
            "filename": html.filename,
            "key": f"datasets/quarry/files/run_id=run-1/{html.filename}",
            "size": len(html.data),
        },
    }
    assert "Traceback" in payload["stack"] and "ValueError: price missing" in payload["stack"]
    assert res.outcome["status"] == "error"
    assert res.outcome["message"] == "price missing"
    assert res.outcome["error_type"] == "script_error"
    check_contract(res.frames)


def test_error_snapshot_can_be_turned_off(execute: Any) -> None:
    res = execute("async def run(ctx):\n    raise ValueError('x')\n", error_snapshot=False)
    assert res.code == 1, res.stderr
    assert res.types == ["run_error", "run_result"]
    assert "error_snapshot" not in res.terminal["payload"]


def test_exception_without_message_uses_class_name(execute: Any) -> None:
    res = execute(
        """
        class Boom(Exception):
            pass

        async def run(ctx):
            raise Boom()
        """
    )
    assert res.code == 1
    assert res.terminal["payload"]["message"] == "Boom"


def test_explicit_run_error(execute: Any) -> None:
    res = execute(
        """
        async def run(ctx):
            await ctx.emit.run_error("blocked", "captcha wall", stack="here")
        """
    )
    assert res.code == 1, res.stderr
    assert res.types == ["run_error", "run_result"]
    assert res.terminal["payload"] == {"error_type": "blocked", "message": "captcha wall", "stack": "here"}
    assert res.outcome == {"status": "error", "message": "captcha wall", "error_type": "blocked", "stack": "here"}


def test_explicit_run_complete_with_summary_and_emit_after_terminal(execute: Any) -> None:
    res = execute(
        """
        from quarry_core import TerminalEventError

        async def run(ctx):
            await ctx.emit.run_complete({"pages": 1})
            try:
                await ctx.emit.item("late", {})
            except TerminalEventError as exc:
                print("AFTER-TERMINAL:", type(exc).__name__)
            try:
                await ctx.storage.put("late.txt", b"x")
            except TerminalEventError:
                print("AFTER-TERMINAL-PUT: TerminalEventError")

        async def cleanup(ctx):
            try:
                await ctx.emit.log("info", "cleanup")
            except TerminalEventError:
                print("CLEANUP: TerminalEventError")
        """
    )
    assert res.code == 0, res.stderr
    assert res.types == ["run_complete", "run_result"]
    assert res.terminal["payload"] == {"summary": {"pages": 1}}
    assert res.outcome == {"status": "completed", "message": "run completed with summary"}
    assert "AFTER-TERMINAL: TerminalEventError" in res.stderr
    assert "AFTER-TERMINAL-PUT: TerminalEventError" in res.stderr
    assert "CLEANUP: TerminalEventError" in res.stderr
    assert not res.files


def test_invalid_emit_arguments_use_no_seq(execute: Any) -> None:
    res = execute(
        """
        from quarry_core import EmitValidationError

        async def run(ctx):
            bad = [
                lambda: ctx.emit.item("", {}),
                lambda: ctx.emit.item(3, {}),
                lambda: ctx.emit.item("x", [1]),
                lambda: ctx.emit.item("x", {"b": b"bytes"}),
                lambda: ctx.emit.item("x", {"f": float("nan")}),
                lambda: ctx.emit.item("x", {1: "int key"}),
                lambda: ctx.emit.item("x", {"big": 2**70}),
                lambda: ctx.emit.item("x", {"huge": "a" * (17 * 1024 * 1024)}),
                lambda: ctx.emit.log("loud", "m"),
                lambda: ctx.emit.checkpoint(""),
                lambda: ctx.emit.enqueue("", {}),
                lambda: ctx.emit.enqueue("t.py", source=""),
                lambda: ctx.emit.artifact("a", "not bytes"),
                lambda: ctx.emit.artifact("", b"x"),
                lambda: ctx.emit.run_error("", "m"),
                lambda: ctx.emit.run_error("t", "m", stack="s" * (65 * 1024)),
                lambda: ctx.emit.run_complete(summary={"s": {1, 2}}),
            ]
            caught = 0
            for call in bad:
                try:
                    await call()
                except EmitValidationError as exc:
                    assert isinstance(exc, ValueError)
                    caught += 1
            await ctx.emit.item("caught", {"n": caught, "of": len(bad)})
        """
    )
    assert res.code == 0, res.stderr
    assert res.types == ["item", "run_complete", "run_result"]
    assert res.events[0]["seq"] == 1
    assert res.item("caught") == {"n": 17, "of": 17}


def test_all_event_types_pass_the_runtime_decoder(execute: Any) -> None:
    res = execute(
        """
        async def run(ctx):
            await ctx.emit.checkpoint("cp-1", note="half way")
            await ctx.emit.enqueue("child.py", {"page": 2}, source="shop", category="c")
            await ctx.emit.enqueue("child.py")
            await ctx.emit.log("info", "hello", {"k": 1})
            await ctx.emit.debug("d")
            await ctx.emit.info("i")
            await ctx.emit.warn("w")
            await ctx.emit.error("e", {"why": None})
            rot = await ctx.emit.rotate_proxy("blocked")
            await ctx.emit.item("rotation", {"rotated": rot.rotated, "error": rot.error})
        """
    )
    assert res.code == 0, res.stderr
    check_contract(res.frames)
    assert [e["type"] for e in res.events] == [
        "checkpoint",
        "enqueue",
        "enqueue",
        "log",
        "log",
        "log",
        "log",
        "log",
        "rotate_proxy",
        "item",
        "run_complete",
    ]
    assert res.events[2]["payload"] == {"target": "child.py", "params": {}}
    assert [e["payload"]["level"] for e in res.events[3:8]] == ["info", "debug", "info", "warn", "error"]
    assert res.item("rotation") == {"rotated": False, "error": "no proxy pool configured"}


def test_gathered_emits_keep_call_order(execute: Any) -> None:
    res = execute(
        """
        import asyncio

        async def run(ctx):
            await asyncio.gather(*(ctx.emit.item("n", {"i": i}) for i in range(300)))
        """
    )
    assert res.code == 0, res.stderr
    assert [p["data"]["i"] for p in res.items] == list(range(300))
    check_contract(res.frames)


def test_artifacts_are_chunked_and_precede_their_commit(execute: Any) -> None:
    res = execute(
        """
        import hashlib

        async def run(ctx):
            data = bytes(range(256)) * (20 * 1024 * 1024 // 256)
            aid = await ctx.emit.artifact("dump.bin", data)
            empty = await ctx.emit.artifact("empty.txt", b"", content_type="text/plain")
            shot = await ctx.emit.artifact("shot.png", await ctx.page.screenshot(), content_type="image/png")
            await ctx.emit.item("ids", {"big": aid, "empty": empty, "shot": shot,
                                        "sha": hashlib.sha256(data).hexdigest()})
        """,
        timeout=120,
    )
    assert res.code == 0, res.stderr
    ids = res.item("ids")
    big_chunks = [f for f in res.frames if f["type"] == "artifact_chunk" and f["artifact_id"] == ids["big"]]
    mib = 1024 * 1024
    assert [len(c["data"]) for c in big_chunks] == [8 * mib, 8 * mib, 4 * mib]
    assert [c["seq"] for c in big_chunks] == [1, 2, 3]
    assert [c["is_last"] for c in big_chunks] == [False, False, True]
    blob = b"".join(c["data"] for c in big_chunks)
    assert blob == bytes(range(256)) * (20 * mib // 256)
    commit_at = next(i for i, f in enumerate(res.frames) if f["type"] == "artifact")
    assert all(res.frames.index(c) < commit_at for c in big_chunks)
    commit = res.frames[commit_at]["payload"]
    assert commit == {
        "artifact_id": ids["big"],
        "name": "dump.bin",
        "content_type": "application/octet-stream",
        "size_bytes": 20 * mib,
    }
    empty_chunks = [f for f in res.frames if f["type"] == "artifact_chunk" and f["artifact_id"] == ids["empty"]]
    assert [(c["seq"], c["is_last"], c["data"]) for c in empty_chunks] == [(1, True, b"")]
    shot_chunks = [f for f in res.frames if f["type"] == "artifact_chunk" and f["artifact_id"] == ids["shot"]]
    assert shot_chunks[0]["data"].startswith(b"\x89PNG")
    # one seq per artifact (its commit), none for chunks
    assert [e["seq"] for e in res.events] == [1, 2, 3, 4, 5]
    check_contract(res.frames)


def test_stdout_guard_print(execute: Any) -> None:
    res = execute(
        """
        async def run(ctx):
            print("Browser started successfully")
            await ctx.emit.item("one", {"k": 1})
        """
    )
    assert res.code == 0, res.stderr
    assert res.types == ["item", "run_complete", "run_result"]
    assert "Browser started successfully" in res.stderr
    assert "[quarry] stdout guard: intercepted stray write: Browser started successfully" in res.stderr


def test_stdout_guard_raw_fd_and_subprocess(execute: Any) -> None:
    res = execute(
        """
        import os, subprocess, sys

        print("top-level print\\nsecond line")

        async def run(ctx):
            os.write(1, b"raw fd write\\n")
            subprocess.run([sys.executable, "-c", "print('child process output')"], check=True)
            sys.stdout.write("plain write")
            sys.stdout.flush()
            await ctx.emit.item("one", {})
        """
    )
    assert res.code == 0, res.stderr
    assert res.types == ["item", "run_complete", "run_result"]
    for text in ("raw fd write", "child process output", "plain write", "top-level print"):
        assert text in res.stderr
    assert "intercepted stray write: top-level print\\nsecond line" in res.stderr
    assert res.stderr.count("[quarry] stdout guard") == 1
