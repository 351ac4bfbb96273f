"""Bad usage and configuration: exit 4, a message naming the problem and the fix, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import ROOT, SCRIPTS

OK = str(SCRIPTS / "ok.py")

CASES = [
    (["run", OK, "--job", "{not json"], "malformed --job JSON"),
    (["run", OK, "--job", "[1, 2]"], "job must be a JSON object, got array (length 2)"),
    (["run", OK, "--job", '"x"'], 'job must be a JSON object, got string ("x")'),
    (["run", OK, "--job", "null"], "job must be a JSON object, got null"),
    (["run", OK, "--job", "{}", "--job-json", "j.json"], "cannot use both --job and --job-json"),
    (["run", OK, "--job-json", "/nonexistent/job.json"], "job file not found: /nonexistent/job.json"),
    (["run", "/nonexistent/script.py"], "script not found: /nonexistent/script.py"),
    (["run"], "missing script"),
    (["run", OK, "--policy", "nope"], 'invalid --policy "nope" (valid: '),
    (
        ["run", OK, "--storage-backend", "nope"],
        'unknown storage backend "nope"; available: lode (quarry-lode)',
    ),
    (["run", OK, "--executor", "nope"], 'unknown executor "nope"; available: playwright (quarry-executor)'),
    (["run", OK, "--attempt", "2"], "--attempt > 1 requires --parent-run-id"),
    (["run", OK, "--parent-run-id", "p1"], "--parent-run-id must not be set when --attempt is 1"),
    (["run", OK, "--source", ""], "invalid --source: source must not be empty"),
    (["run", OK, "--timeout", "soon"], "--timeout: invalid duration 'soon'"),
    (["run", OK, "--timeout", "-1s"], "--timeout: invalid duration"),
    (["run", OK, "--resolve-from", "/nonexistent/dir"], "directory does not exist: /nonexistent/dir"),
    (["run", OK, "--browser-ws-endpoint", "ftp://x"], "scheme must be ws, wss, http or https"),
    (["run", OK, "--unknown-flag"], "No such option: --unknown-flag"),
    (["run", OK, "--attempt", "two"], "Invalid value for '--attempt'"),
    (["bogus-command"], "No such command"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(c[0][2:] or c[0]) for c in CASES])
def test_bad_usage_exits_4_and_writes_nothing(tmp_path: Path, argv: list[str], message: str) -> None:
    storage = tmp_path / "data"
    cmd = [sys.executable, "-m", "quarry_core.cli", *argv]
    if argv and argv[0] == "run":
        cmd += ["--storage-path", str(storage)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not storage.exists(), "nothing may be written for a rejected run"
    assert proc.stdout == ""


def test_storage_path_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "quarry_core.cli", "run", OK, "--storage-path", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 4
    assert f"storage path is not a directory: {target}" in proc.stderr


def test_version_and_help_are_light() -> None:
    code = (
        "import sys; from quarry_core.cli import main; main(['--help']);"
        "bad = [m for m in ('pyarrow', 'playwright', 'cbor2', 'quarry_lode', 'quarry_executor') if m in sys.modules];"
        "print('HEAVY', bad)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    out = subprocess.run([sys.executable, "-m", "quarry_core.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "quarry 0.1.0 (contract 1.0.0)\n"


def test_plugins_lists_first_party_plugins() -> None:
    import json

    out = subprocess.run(
        [sys.executable, "-m", "quarry_core.cli", "plugins", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    rows = {(p["kind"], p["name"]): p["distribution"] for p in data["plugins"]}
    assert rows[("ingestion_policy", "strict")] == "quarry-policy-strict"
    assert rows[("storage_backend", "lode")] == "quarry-lode"
    assert rows[("executor", "playwright")] == "quarry-executor"
    assert data["load_errors"] == []
