"""The read one-liners of docs/how-to/read-data.md, run exactly as written on a real stored `quarry run`
(pyarrow.dataset and DuckDB with Hive partitioning, lode.md §12): every code block that reads `quarry-data`."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import ROOT, run_id_from

DOC = ROOT / "docs" / "how-to" / "read-data.md"
BLOCK_RE = re.compile(r"```(python|sql)\n(.*?)```", re.S)


def doc_blocks() -> list[tuple[str, str]]:
    text = DOC.read_text()
    section = text[text.index("## With pyarrow or DuckDB") : text.index("## With the reader API")]
    return [(lang, code) for lang, code in BLOCK_RE.findall(section) if "quarry-data/datasets" in code]


def evaluate(code: str) -> Any:
    """Run a snippet and return the value of its last expression (what a REPL would show)."""
    tree = ast.parse(code)
    last = tree.body.pop()
    assert isinstance(last, ast.Expr), "a one-liner must end with an expression"
    scope: dict[str, Any] = {}
    exec(compile(tree, str(DOC), "exec"), scope)
    return eval(compile(ast.Expression(last.value), str(DOC), "eval"), scope)


def rows_of(result: Any) -> list[dict[str, Any]]:
    import pyarrow as pa

    if isinstance(result, pa.Table):
        return result.to_pylist()
    arrow = result.arrow()  # a DuckDB relation
    table = arrow if isinstance(arrow, pa.Table) else arrow.read_all()
    return table.to_pylist()


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("read")
    script = workdir / "shop.py"
    script.write_text("async def run(ctx):\n    pass\n")
    wrapper = workdir / "fake-python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {ROOT / 'tests' / 'fakes' / 'fake_executor.py'}\n")
    wrapper.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "quarry_core.cli", "run", str(script), "--executor-python", str(wrapper)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,  # default --storage-path ./quarry-data, as the doc assumes
        env={**os.environ, "FAKE_SCENARIO": "ok"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (workdir / "quarry-data" / "datasets" / "quarry" / "events").is_dir()
    return workdir, run_id_from(proc.stdout)


def test_the_doc_has_both_one_liners() -> None:
    codes = [code for _, code in doc_blocks()]
    assert any("pyarrow.dataset.dataset(" in c and 'partitioning="hive"' in c for c in codes)
    assert any("duckdb.read_parquet(" in c and "hive_partitioning=True" in c for c in codes)
    assert any(
        "read_parquet('quarry-data/datasets/quarry/events/**/*.parquet', hive_partitioning=true)" in c for c in codes
    )


@pytest.mark.parametrize("index", range(len(doc_blocks())))
def test_doc_snippet_reads_the_run(stored_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    import duckdb

    workdir, run_id = stored_run
    monkeypatch.chdir(workdir)
    lang, code = doc_blocks()[index]
    if lang == "sql":
        rows = rows_of(duckdb.sql(code))
        assert [r["seq"] for r in rows] == [1, 2, 3]  # the items, in order
        assert {str(r["run_id"]) for r in rows} == {run_id}
        return
    rows = rows_of(evaluate(code))
    assert len(rows) == 4  # three items and run_complete
    assert sorted(str(r["event_type"]) for r in rows) == ["item", "item", "item", "run_complete"]
    assert {str(r["source"]) for r in rows} == {"shop"}
    assert {str(r["category"]) for r in rows} == {"default"}
    assert {str(r["run_id"]) for r in rows} == {run_id}
    assert sorted(r["seq"] for r in rows) == [1, 2, 3, 4]
    if "pa.string()" in code or "hive_types_autocast = false" in code:
        assert all(isinstance(r[k], str) for r in rows for k in ("source", "category", "day", "run_id", "event_type"))
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["day"]) for r in rows)
