"""Command line behaviour: exit 3 for unusable run requests, exit 2 for load errors, ``--validate``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (None, "stdin is empty, expected JSON input"),
        (b"\n", "stdin is empty, expected JSON input"),
        (b"{not json\n", "invalid run request: invalid JSON"),
        (b'{"run_id": "r", "attempt": NaN}\n', "invalid run request: invalid JSON"),
        (b"[1, 2]\n", "run request must be a JSON object"),
        (b'{"run_id": "", "attempt": 1, "script": "/x.py", "job": {}}\n', "run_id must be a non-empty string"),
        (b'{"run_id": "r", "attempt": true, "script": "/x.py", "job": {}}\n', "attempt must be an integer >= 1"),
        (
            b'{"run_id": "r", "attempt": 2, "script": "/x.py", "job": {}}\n',
            "lineage violation: attempt > 1 requires parent_run_id",
        ),
        (b'{"run_id": "r", "attempt": 1, "script": "x.py", "job": {}}\n', "script must be an absolute path"),
        (b'{"run_id": "r", "attempt": 1, "script": "/x.py", "job": []}\n', "job must be a JSON object"),
        (
            b'{"run_id": "r", "attempt": 1, "script": "/x.py", "job": {},'
            b' "proxy": {"protocol": "ftp", "host": "h", "port": 1}}\n',
            "invalid proxy: protocol must be http, https or socks5",
        ),
    ],
)
def test_unusable_run_request_exits_3(run_exec: Callable[..., Any], stdin: bytes | None, message: str) -> None:
    res = run_exec(stdin, close_stdin=True)
    assert res.code == 3, res.stderr
    assert res.frames == []
    assert message in res.stderr


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (None, "file not found"),
        ("def broken(:\n", "import failed: SyntaxError: "),
        ("import no_such_module_qx\n", "import failed: ModuleNotFoundError: No module named 'no_such_module_qx'"),
        ("raise RuntimeError('at import')\n", "import failed: RuntimeError: at import"),
        ("x = 1\n", "missing run function"),
        ("def run(ctx):\n    pass\n", 'run must be defined with "async def"'),
        ("async def run(ctx):\n    pass\nbefore_run = 5\n", "before_run hook is not callable"),
    ],
)
def test_load_errors_crash_with_exit_2(
    run_exec: Callable[..., Any], make_req: Callable[..., Any], tmp_path: Any, source: str | None, reason: str
) -> None:
    path = tmp_path / "script.py"
    if source is not None:
        path.write_text(source)
    res = run_exec(make_req(str(path)))
    assert res.code == 2, res.stderr
    assert res.types == ["run_result"]
    assert res.outcome["status"] == "crash"
    assert res.outcome["message"].startswith(f'Failed to load script "{path}": {reason}')


def test_script_directory_is_first_on_sys_path(execute: Any, tmp_path: Any) -> None:
    (tmp_path / "helper_mod_qx.py").write_text("VALUE = 42\n")
    res = execute(
        """
        import helper_mod_qx
        from quarry_core import PrepareResult

        def prepare(job, run):
            return PrepareResult.skip(reason=str(helper_mod_qx.VALUE))

        async def run(ctx):
            pass
        """,
    )
    assert res.code == 0, res.stderr
    assert res.terminal["payload"]["summary"] == {"skipped": True, "reason": "42"}


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quarry_executor", "--validate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_validate(tmp_path: Any) -> None:
    good = tmp_path / "good.py"
    good.write_text(
        "print('noise at import')\n"
        "def cleanup(ctx): pass\nasync def prepare(job, run): pass\nasync def run(ctx): pass\n"
    )
    proc = _validate(str(good))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"valid": True, "exports": {"run": True, "hooks": ["prepare", "cleanup"]}}
    assert "noise at import" in proc.stderr

    bad = tmp_path / "bad.py"
    bad.write_text("def run(ctx): pass\n")
    proc = _validate(str(bad))
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {
        "valid": False,
        "error": f'Failed to load script "{bad}": run must be defined with "async def"',
    }

    proc = _validate()
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["valid"] is False


def test_warm_mode_rejects_an_unusable_first_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "quarry_executor", "--warm"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QUARRY_BROWSER_ENDPOINT": "http://127.0.0.1:9"},  # no eager browser launch
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert "stdin is empty, expected JSON input" in proc.stderr


def test_second_guard_install_raises() -> None:
    code = (
        "from quarry_executor.guard import install_stdout_guard as g\n"
        "fd = g()\n"
        "try:\n    g()\nexcept RuntimeError as e:\n    print('second install:', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert "second install: the stdout guard is already installed" in proc.stderr
