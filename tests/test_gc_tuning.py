"""The executor runs with Quarry's collector settings unless ``QUARRY_GC=default`` (quarry_core.gctuning)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2e_helpers import events_of, run_id_from
from quarry_core.gctuning import YOUNG_THRESHOLD

pytestmark = pytest.mark.browser


def _gc_item(quarry, storage, env=None):
    res = quarry("gc_state.py", env=env)
    assert res.code == 0, res.stderr
    items = [r for r in events_of(storage, run_id_from(res.stdout)) if r["event_type"] == "item"]
    assert len(items) == 1
    return json.loads(items[0]["payload"])["data"]


def test_executor_raises_the_young_threshold_and_freezes_start_up(quarry, storage):
    data = _gc_item(quarry, storage)
    assert data["threshold"][0] == YOUNG_THRESHOLD
    # Playwright, the browser session and the script were loaded before run(): tens of thousands of objects
    assert data["frozen"] > 10_000


def test_quarry_gc_default_keeps_cpythons_settings(quarry, storage):
    fresh = subprocess.run(
        [sys.executable, "-c", "import gc; print(list(gc.get_threshold()))"], capture_output=True, text=True, check=True
    )
    data = _gc_item(quarry, storage, env={"QUARRY_GC": "default"})
    assert data["threshold"] == json.loads(fresh.stdout) != [YOUNG_THRESHOLD, 10, 10]
    assert data["frozen"] == 0
