"""The benchmark scripts of ``make bench`` keep working: each runs end to end at a tiny size and reports every
contender it has (the peers of the optional ``bench`` group are reported as skipped when not installed).

Only that they run and count correctly is checked here; their speed is measured by ``make bench``, not by tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "QUARRY_NO_BROWSER_REUSE"}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_ingest_benchmark_runs_every_policy(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    res = _run(
        [
            str(BENCH / "ingest.py"),
            "--n",
            "400",
            "--strict-n",
            "20",
            "--rss-n",
            "0",
            "--rounds",
            "2",
            "--json",
            str(out),
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    numbers = json.loads(out.read_text())
    for name in ("ceiling", "ceiling_compiled", "strict", "buffered", "streaming"):
        assert numbers[name]["items_per_s"] > 0, (name, numbers[name])
    assert "streaming ≥ 0.5× ceiling" in res.stdout and "× ceiling-c" in res.stdout
    assert (
        "round 2:" in res.stdout
        and len(numbers["rounds"]) == 2
        and len(numbers["streaming_over_ceiling"]["rounds"]) == 2
    )


@pytest.mark.slow
def test_crawl_benchmark_finds_every_item_and_prints_cpu_by_process(tmp_path: Path) -> None:
    out = tmp_path / "crawl.json"
    args = [str(BENCH / "crawl.py"), "--pages", "6", "--only", "quarry,quarry-page,playwright", "--cpu"]
    res = _run([*args, "--json", str(out)], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    numbers = json.loads(out.read_text())
    for name in ("quarry", "quarry-page", "playwright"):
        assert numbers[name]["pages_per_s"] > 0, (name, numbers[name])  # a contender missing an item is an error
    cpu_lines = [line for line in res.stderr.splitlines() if "CPU s by process" in line]
    assert len(cpu_lines) == 3, res.stderr
    assert all("renderers" in line and "total" in line for line in cpu_lines), cpu_lines
    assert "Quarry, --isolation page / bare Playwright" in res.stdout
