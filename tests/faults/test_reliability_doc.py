"""docs/reliability.md names a test for every fault; each named file and test function must exist."""

from __future__ import annotations

import re

from e2e_helpers import ROOT

DOC = ROOT / "docs" / "reliability.md"


def test_every_test_the_reliability_table_names_exists() -> None:
    text = DOC.read_text()
    refs = re.findall(r"`((?:tests|quarry-[a-z-]+)/[\w/.-]+\.py)(?:::(\w+))?`", text)
    assert len(refs) >= 40, "the table names its tests"
    missing = []
    for path, func in refs:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif func and not re.search(rf"^(?:async )?def {func}\(", file.read_text(), re.MULTILINE):
            missing.append(f"{path}::{func}")
    assert missing == []


def test_every_fault_test_module_is_in_the_table() -> None:
    text = DOC.read_text()
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "faults").glob("test_*.py"))
    absent = [m for m in modules if m not in text and not m.endswith("test_reliability_doc.py")]
    assert absent == []
