"""Installable as the design says: in a fresh virtualenv, the built wheels of ``quarry-core`` and
``quarry-policy-buffered`` give a working ``quarry run`` (executor and storage come with core); what is
missing is named with the distribution to install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import uv_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _uv() -> str:
    return uv_path()


def test_core_plus_buffered_from_wheels_runs(wheels: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "-q",
            "--find-links",
            str(wheels),
            "quarry-core==0.1.0",
            "quarry-policy-buffered==0.1.0",
        ],
        check=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    quarry = venv / "bin" / "quarry"
    listing = subprocess.run(
        [str(quarry), "plugins", "-f", "json"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    names = {(p["kind"], p["name"]) for p in json.loads(listing.stdout)["plugins"]}
    assert ("executor", "playwright") in names and ("storage_backend", "lode") in names
    assert ("ingestion_policy", "buffered") in names and ("ingestion_policy", "strict") not in names
    script = tmp_path / "one.py"
    script.write_text("async def run(ctx):\n    await ctx.emit.item(item_type='row', data={'n': 1})\n")
    # the default policy lives in a distribution that is not installed: exit 4 naming it
    missing = subprocess.run(
        [str(quarry), "run", str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert missing.returncode == 4, missing.stderr
    assert "quarry-policy-strict" in missing.stderr and "pip install" in missing.stderr
    ok = subprocess.run(
        [
            str(quarry),
            "run",
            str(script),
            "--policy",
            "buffered",
            "--buffer-events",
            "100",
            "--storage-path",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "outcome=success" in ok.stdout
    assert list((tmp_path / "data" / "datasets" / "quarry" / "events").rglob("*.parquet"))
