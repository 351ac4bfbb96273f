"""Helpers shared by the end-to-end tests (importable: ``tests/`` is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
FAKES = Path(__file__).resolve().parent / "fakes"


def read_table(storage: Path, table: str = "events", **filters: str) -> list[dict[str, Any]]:
    """Committed rows of a Lode table through the reader API."""
    from quarry_lode import open_dataset

    ds = open_dataset(str(storage))
    return ds.read(table, **filters).to_pylist()


def events_of(storage: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    rows = read_table(storage, "events", **({"run_id": run_id} if run_id else {}))
    return sorted(rows, key=lambda r: (r["run_id"], r["seq"]))


def run_id_from(stdout: str) -> str:
    first = stdout.splitlines()[0]
    assert first.startswith("run_id="), stdout
    return first.split(",", 1)[0].removeprefix("run_id=")
