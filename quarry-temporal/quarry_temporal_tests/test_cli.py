"""``quarry temporal submit`` and ``quarry-temporal-worker``: mounted through ``quarry_cli_commands``, and every
bad input is exit 4 with a message naming the problem, before anything connects or runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from quarry_core.cli import main as quarry_main
from quarry_core.plugins import PluginHost
from quarry_temporal.testing import free_port
from quarry_temporal.worker import main as worker_main
from quarry_temporal_tests.conftest import SCRIPTS


def test_temporal_group_is_contributed_through_the_hook() -> None:
    provided = PluginHost.build().get("cli_command", "temporal")
    assert provided.distribution == "quarry-temporal"
    assert provided.record.factory().registered_commands[0].name == "submit"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "script not found: missing.py"),
        ([str(SCRIPTS / "ok.py"), "--depth", "2"], "--max-runs is required when --depth > 0"),
        ([str(SCRIPTS / "ok.py"), "--job", "[1]"], "job must be a JSON object, got list"),
        ([str(SCRIPTS / "ok.py"), "--job", "{"], "malformed JSON in --job"),
        ([str(SCRIPTS / "ok.py"), "--max-attempts", "0"], "--max-attempts must be >= 1"),
        ([str(SCRIPTS / "ok.py"), "--retry-initial", "soon"], "--retry-initial"),
        ([str(SCRIPTS / "ok.py"), "--heartbeat-timeout", "0s"], "--heartbeat-timeout and --start-to-close must be > 0"),
        ([str(SCRIPTS / "ok.py"), "--source", ""], "invalid --source: source must not be empty"),
        ([str(SCRIPTS / "ok.py"), "--task-queue", " "], "--task-queue must not be empty"),
        ([str(SCRIPTS / "ok.py"), "--bogus"], "No such option: --bogus"),
    ],
)
def test_submit_usage_errors_exit_4(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = quarry_main(["temporal", "submit", "--no-config", *args])
    err = capsys.readouterr().err
    assert code == 4, err
    assert message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage-backend", "nope"], 'unknown storage backend "nope"'),
        (["--heartbeat-interval", "often"], "--heartbeat-interval"),
        (["--max-concurrent-activities", "0"], "--max-concurrent-activities must be >= 1"),
        (["--log-level", "loud"], "invalid log.level 'loud'"),
    ],
)
def test_worker_usage_errors_exit_4(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = worker_main(["--no-config", "--storage-path", str(tmp_path / "d"), *args])
    err = capsys.readouterr().err
    assert code == 4, err
    assert message in err
    assert not (tmp_path / "d").exists() or args[0] != "--storage-backend"


@pytest.mark.parametrize("program", ["worker", "submit"])
def test_unreachable_server_is_exit_4_naming_the_address(program: str, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    if program == "worker":
        cmd = [str(Path(sys.executable).parent / "quarry-temporal-worker"), "--no-config"]
        cmd += ["--storage-path", str(tmp_path / "d")]
    else:
        cmd = [sys.executable, "-m", "quarry_core.cli", "temporal", "submit", str(SCRIPTS / "ok.py"), "--no-config"]
    t0 = time.monotonic()
    proc = subprocess.run([*cmd, "--address", address], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert f"cannot connect to Temporal at {address}" in proc.stderr
    assert time.monotonic() - t0 < 30


def test_worker_checks_the_run_configuration_before_polling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "quarry.toml"
    config.write_text('[policy]\nname = "bogus"\n[temporal]\naddress = "127.0.0.1:1"\n')
    code = worker_main(["--config", str(config), "--storage-path", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 4, err
    assert 'invalid --policy "bogus"' in err and "cannot connect" not in err


def test_submit_without_wait_prints_the_workflow_id(temporal_server, tmp_path: Path) -> None:
    import asyncio

    from temporalio.client import Client

    cmd = [sys.executable, "-m", "quarry_core.cli", "temporal", "submit", str(SCRIPTS / "ok.py"), "--no-config"]
    cmd += ["--address", temporal_server.address, "--task-queue", "nobody-polls", "--workflow-id", "wf-nowait"]
    cmd += ["--job", '{"url": "http://127.0.0.1:1/"}', "--job-id", "j-1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "workflow_id=wf-nowait workflow=QuarryJobWorkflow task_queue=nobody-polls\n"

    async def describe() -> tuple[str, Any]:
        client = await Client.connect(temporal_server.address)
        handle = client.get_workflow_handle("wf-nowait")
        desc = await handle.describe()
        history = await handle.fetch_history()
        start = history.events[0].workflow_execution_started_event_attributes
        (arg,) = await client.data_converter.decode(start.input.payloads)
        await handle.terminate("test done")
        return desc.workflow_type, arg

    workflow_type, arg = asyncio.run(describe())
    assert workflow_type == "QuarryJobWorkflow"
    assert arg["script"] == str((SCRIPTS / "ok.py").resolve()) and arg["job"] == {"url": "http://127.0.0.1:1/"}
    assert (arg["source"], arg["job_id"], arg["max_attempts"], arg["policy"]) == ("ok", "j-1", 3, None)
