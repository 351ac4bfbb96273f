"""``quarry run`` policy options (CONTRACT_POLICY §5.1, §6; CONTRACT_CLI §5): impossible combinations exit 4 with
an actionable message before anything runs or is written; flags that do not apply to the chosen policy warn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import ROOT, SCRIPTS

OK = str(SCRIPTS / "ok.py")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    storage = tmp_path / "never-created"
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", OK, "--storage-path", str(storage), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert not storage.exists(), "a usage error must write nothing"
    return res


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--policy", "buffered"],
            "buffered policy requires buffer limits: set --buffer-events and/or --buffer-bytes to a value > 0",
        ),
        (
            ["--policy", "streaming"],
            "streaming policy requires at least one flush trigger: set --flush-count and/or --flush-interval",
        ),
        (
            ["--policy", "buffered", "--buffer-events", "10", "--flush-mode", "fast"],
            'invalid --flush-mode "fast" (valid: at_least_once, chunks_first, two_phase)',
        ),
        (
            ["--policy", "buffered", "--buffer-bytes", "1KiB", "--batch-bytes", "2KiB"],
            "invalid --batch-bytes 2048: must be <= --buffer-bytes (1024)",
        ),
        (["--policy", "streaming", "--flush-interval", "soon"], "--flush-interval: invalid duration 'soon'"),
    ],
    ids=["buffered-no-limits", "streaming-no-trigger", "bad-mode", "batch-over-buffer", "bad-interval"],
)
def test_impossible_policy_settings_exit_4(tmp_path, args, message):
    res = _run(tmp_path, *args)
    assert res.returncode == 4, res.stderr
    assert f"Error: {message}" in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize(
    ("args", "warning"),
    [
        (["--policy", "strict", "--buffer-events", "5", "--flush-count", "3"], "--buffer-events, --flush-count"),
        (["--policy", "streaming", "--flush-count", "3", "--flush-mode", "two_phase"], "--flush-mode"),
    ],
    ids=["strict", "streaming"],
)
def test_flags_that_do_not_apply_warn(tmp_path, args, warning):
    # a malformed job (validated after the policy) stops the run right after the warning, without a browser
    res = _run(tmp_path, *args, "--job", "{")
    policy = args[1]
    assert f"Warning: {warning} ignored for {policy} policy" in res.stderr
    assert res.returncode == 4 and "malformed --job JSON" in res.stderr
