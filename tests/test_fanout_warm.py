"""Warm executors (CONTRACT_RUN §4.1, CONTRACT_IPC §9) with real processes and no browser: the scripts skip in
``prepare``, so only the protocol, the script cache and the pool are exercised."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from quarry_core.interfaces import ExecutorConfig, StorageConfig
from quarry_core.plugins import PluginHost
from quarry_core.protocol.codec import decode_payload, encode_frame
from quarry_core.protocol.frames import RunRequest, RunRequestFrame, Shutdown
from quarry_core.runtime.pool import ExecutorPool
from quarry_core.runtime.process import ExecutorProcess
from quarry_core.runtime.run import RunSettings, execute_run

SKIP = """
VERSION = {version}


def prepare(job, run):
    return {{"action": "skip", "reason": f"v{{VERSION}} pid {{__import__('os').getpid()}}"}}


async def run(ctx):
    raise AssertionError("never runs")
"""


def _script(path: Path, version: int) -> str:
    path.write_text(SKIP.format(version=version))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + version * 10**9))  # a new mtime even on coarse clocks
    return str(path)


def _env() -> dict[str, str]:
    return {**os.environ, "QUARRY_BROWSER_ENDPOINT": "http://127.0.0.1:9"}  # never used: no eager browser


async def _frames_until_result(proc: ExecutorProcess) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = decode_payload(await asyncio.wait_for(proc.reader.read_body(), 30))
        frames.append(frame)
        if frame.get("type") == "run_result":
            return frames


def test_warm_protocol_runs_in_turn_rejects_a_bad_request_and_reloads_a_changed_script(tmp_path: Path) -> None:
    script = _script(tmp_path / "skip.py", 1)

    async def scenario() -> None:
        cmd = [sys.executable, "-m", "quarry_executor", "--warm"]
        proc = await ExecutorProcess.start(cmd, _env(), on_stderr=lambda line: None)
        try:
            await proc.send_bytes(RunRequest(run_id="r1", attempt=1, script=script, job={}).to_json_line())
            first = await _frames_until_result(proc)
            await proc.send(RunRequestFrame(RunRequest(run_id="r2", attempt=1, script=script, job={})))
            second = await _frames_until_result(proc)
            # a bad request (attempt 2 without parent_run_id): that run crashes, the process stays
            bad_request = {"type": "run_request", "run_id": "r3", "attempt": 2, "script": script, "job": {}}
            await proc.send_bytes(encode_frame(_Raw(bad_request)))
            bad = await _frames_until_result(proc)
            _script(tmp_path / "skip.py", 2)
            await proc.send(RunRequestFrame(RunRequest(run_id="r4", attempt=1, script=script, job={})))
            fourth = await _frames_until_result(proc)
            await proc.send(Shutdown())
            await proc.close_stdin()
            code = await proc.wait(30)
        finally:
            if proc.returncode is None:
                await proc.stop(1)
        for frames, run_id in ((first, "r1"), (second, "r2"), (fourth, "r4")):
            event, result = frames
            assert (event["type"], event["run_id"], event["seq"]) == ("run_complete", run_id, 1)  # seq per run
            assert (result["run_id"], result["outcome"]["status"]) == (run_id, "completed")
        reasons = [frames[0]["payload"]["summary"]["reason"] for frames in (first, second, fourth)]
        assert reasons[0] == reasons[1] == f"v1 pid {proc.pid}"  # one process, the module loaded once
        assert reasons[2] == f"v2 pid {proc.pid}"  # the changed file was loaded again
        assert [f["type"] for f in bad] == ["run_result"]
        assert bad[0]["run_id"] == "r3" and bad[0]["outcome"]["status"] == "crash"
        assert "parent_run_id" in bad[0]["outcome"]["message"]
        assert code == 0

    asyncio.run(scenario())


class _Raw:
    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d

    def to_wire(self) -> dict[str, Any]:
        return self.d


def test_pool_recycles_after_n_runs_and_counts_launches_per_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path / "skip.py", 1)
    host = PluginHost.build()
    monkeypatch.setenv("QUARRY_BROWSER_ENDPOINT", "http://127.0.0.1:9")

    async def scenario() -> list[Any]:
        pool = ExecutorPool(
            host, "playwright", ExecutorConfig(python=sys.executable), size=2, recycle_after=2, on_stderr=print
        )
        reports = []
        try:
            for i in range(5):
                settings = RunSettings(
                    script=script,
                    run_id=f"run-{i}",
                    source="skip",
                    storage=StorageConfig(path=str(tmp_path / "data")),
                )
                reports.append(await execute_run(settings, host, pool=pool))
        finally:
            await pool.close()
        assert pool.launched == 3 and pool.replaced == 0
        return reports

    reports = asyncio.run(scenario())
    assert [r.outcome.value for r in reports] == ["success"] * 5
    pids = [r.terminal_summary["summary"]["reason"].split()[-1] for r in reports]  # type: ignore[index]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]  # a new process after every 2 runs
    assert [r.metrics["executor_launch_success_total"] for r in reports] == [1, 0, 1, 0, 1]
    assert all(r.metrics["ipc_frames_received_total"] == 2 for r in reports)  # this run's frames only


def test_pool_waits_for_a_leased_process_before_starting_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``launch_grace`` a second acquire takes the first process when it comes back within the grace, and
    starts its own only when nothing comes back in time."""
    host = PluginHost.build()
    monkeypatch.setenv("QUARRY_BROWSER_ENDPOINT", "http://127.0.0.1:9")

    async def scenario() -> None:
        pool = ExecutorPool(
            host, "playwright", ExecutorConfig(python=sys.executable), size=2, on_stderr=print, launch_grace=30.0
        )
        try:
            first = await pool.acquire()
            second = asyncio.create_task(pool.acquire())
            await asyncio.sleep(0.3)
            assert not second.done(), "the second acquire started a process although one was leased"
            pool.release(first, reusable=True)
            assert await asyncio.wait_for(second, 5) is first
            assert pool.launched == 1

            pool.launch_grace = 0.2
            third = await asyncio.wait_for(pool.acquire(), 60)  # nothing comes back: a new process after 0.2 s
            assert third is not first and pool.launched == 2
            pool.release(first, reusable=False)  # retired, not returned
            pool.release(third, reusable=True)
        finally:
            await pool.close()

    asyncio.run(scenario())
