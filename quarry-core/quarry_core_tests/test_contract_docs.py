"""The contract documents in ``docs/contracts/`` agree with the code, number for number.

Every table parsed here is the documented form of something the code also holds. A change on either side without the
other fails these tests, which is the point of the contract change protocol in CONTRIBUTING.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

import quarry_core
from quarry_core import errors, outcomes
from quarry_core.interfaces import PolicyStats
from quarry_core.protocol import constants
from quarry_core.protocol.frames import Event, RunRequest

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts"

CONTRACT_FILES = [
    "CONTRACT_EMIT.md",
    "CONTRACT_IPC.md",
    "CONTRACT_RUN.md",
    "CONTRACT_POLICY.md",
    "CONTRACT_LODE.md",
    "CONTRACT_PROXY.md",
    "CONTRACT_CLI.md",
    "CONTRACT_INTEGRATION.md",
    "CONTRACT_METRICS.md",
]


def read(name: str) -> str:
    return (CONTRACTS / name).read_text(encoding="utf-8")


def cells(line: str) -> list[str]:
    """Split one markdown table row into stripped cells."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table(text: str, header: str) -> list[list[str]]:
    """Body rows of the unique table whose header row is exactly ``header`` (whitespace-normalised)."""
    want = cells(header)
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith("|") and cells(line) == want]
    assert len(starts) == 1, f"expected exactly one table headed {header!r}, found {len(starts)}"
    i = starts[0] + 1
    assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i].strip()), f"no separator row under {header!r}"
    rows = []
    for line in lines[i + 1 :]:
        if not line.lstrip().startswith("|"):
            break
        row = cells(line)
        assert len(row) == len(want), f"row {line!r} has {len(row)} cells, header has {len(want)}"
        rows.append(row)
    assert rows, f"table {header!r} is empty"
    return rows


def backticked(cell: str) -> str:
    m = re.fullmatch(r"`([^`]+)`", cell)
    assert m, f"expected a single `name` in backticks, got {cell!r}"
    return m.group(1)


def parse_value(cell: str) -> int | str:
    if re.fullmatch(r'"[^"]*"', cell):
        return cell[1:-1]
    assert re.fullmatch(r"\d+", cell), f"value {cell!r} must be a plain integer or a quoted string"
    return int(cell)


def headings(text: str, level: int) -> list[str]:
    prefix = "#" * level + " "
    return [line[len(prefix) :].strip() for line in text.splitlines() if line.startswith(prefix)]


# --------------------------------------------------------------------------- every document


@pytest.mark.parametrize("name", CONTRACT_FILES)
def test_contract_document_exists_with_version_scope_and_compatibility(name: str) -> None:
    text = read(name)
    lines = text.splitlines()
    assert lines[0].startswith("# "), f"{name} must start with a title"
    m = re.search(r"^Contract version: `([^`]+)`$", text, re.MULTILINE)
    assert m, f"{name} must state 'Contract version: `X.Y.Z`'"
    assert m.group(1) == constants.CONTRACT_VERSION
    assert text.index(m.group(0)) < 300, f"{name} must state its version at the top"
    sections = headings(text, 2)
    assert sections, f"{name} has no sections"
    assert sections[-1] == "Compatibility", f"{name} must end with a Compatibility section"
    compat = text.split("## Compatibility", 1)[1]
    assert "Additive" in compat and "Breaking" in compat


def test_no_unexpected_contract_documents() -> None:
    present = sorted(p.name for p in CONTRACTS.glob("CONTRACT_*.md"))
    assert present == sorted(CONTRACT_FILES)


# --------------------------------------------------------------------------- IPC


def _int_or_str_constants() -> dict[str, int | str]:
    out: dict[str, int | str] = {}
    for name in dir(constants):
        if name.startswith("_") or not name.isupper():
            continue
        value = getattr(constants, name)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            continue
        out[name] = value
    return out


def test_ipc_constant_table_matches_code_exactly() -> None:
    rows = table(read("CONTRACT_IPC.md"), "| Constant | Value |")
    documented: dict[str, int | str] = {}
    for name_cell, value_cell in rows:
        name = backticked(name_cell)
        assert name not in documented, f"{name} documented twice"
        documented[name] = parse_value(value_cell)
    assert documented == _int_or_str_constants()


def test_ipc_constant_table_covers_the_exported_constants() -> None:
    exported = {n for n in constants.__all__ if isinstance(getattr(constants, n), (int, str))}
    assert exported == set(_int_or_str_constants())


def test_every_frame_type_is_named_in_the_ipc_contract() -> None:
    text = read("CONTRACT_IPC.md")
    mentioned = set(re.findall(r"`([a-z_]+)`", text))
    missing = (constants.EXECUTOR_FRAME_TYPES | constants.CONTROL_FRAME_TYPES) - mentioned
    assert not missing, f"frame types missing from CONTRACT_IPC.md: {sorted(missing)}"


def test_frame_kinds_table_lists_exactly_the_frame_types() -> None:
    rows = table(read("CONTRACT_IPC.md"), "| `type` | Kind | Direction |")
    executor: set[str] = set()
    control: set[str] = set()
    for type_cell, _kind, direction in rows:
        names = set(re.findall(r"`([a-z_]+)`", type_cell))
        if direction == "executor → runtime":
            executor |= names
        elif direction == "runtime → executor":
            control |= names
        else:  # pragma: no cover - a malformed row
            pytest.fail(f"unknown direction {direction!r}")
    assert executor == constants.EXECUTOR_FRAME_TYPES
    assert control == constants.CONTROL_FRAME_TYPES


def test_executor_exit_code_table() -> None:
    rows = table(read("CONTRACT_IPC.md"), "| Executor exit | Meaning |")
    meanings = {int(code): meaning for code, meaning in rows}
    assert list(meanings) == [0, 1, 2, 3]
    assert all(meanings.values())


def test_executor_exit_code_table_matches_the_executor() -> None:
    host = pytest.importorskip("quarry_executor.host")
    main = pytest.importorskip("quarry_executor.__main__")  # defines constants only; main() is not called
    rows = table(read("CONTRACT_IPC.md"), "| Executor exit | Meaning |")
    meanings = {int(code): meaning.lower() for code, meaning in rows}
    for status, code in host.EXIT_CODES.items():  # run_result status -> cold exit code
        assert status in meanings[code], f"exit {code} should be documented as {status!r}"
    assert "unusable run request" in meanings[main.EXIT_BAD_REQUEST]
    assert set(meanings) == {*host.EXIT_CODES.values(), main.EXIT_BAD_REQUEST}


def test_run_request_keys_are_documented() -> None:
    rows = table(read("CONTRACT_IPC.md"), "| Key | Type | Required | Rule |")
    documented = {backticked(row[0]) for row in rows}
    assert documented == {f.name for f in attrs.fields(RunRequest)}


# --------------------------------------------------------------------------- EMIT


def test_envelope_keys_are_documented() -> None:
    rows = table(read("CONTRACT_EMIT.md"), "| Key | Type | Required | Rule |")
    documented = {backticked(row[0]) for row in rows}
    # private attributes (``_wire_size``, the frame length kept for policies) are not envelope keys
    assert documented == {f.name for f in attrs.fields(Event) if not f.name.startswith("_")}
    assert Event(event_id="e", run_id="r", seq=1, type="log", ts="t", payload={}).to_wire().keys() <= documented


def test_every_event_type_has_a_section_and_terminal_and_droppable_marks() -> None:
    text = read("CONTRACT_EMIT.md")
    sections = {}
    for heading in headings(text, 3):
        m = re.fullmatch(r"`([a-z_]+)`(?: \((.+)\))?", heading)
        if m:
            sections[m.group(1)] = m.group(2) or ""
    assert set(sections) == constants.EVENT_TYPES
    assert {t for t, mark in sections.items() if "terminal" in mark} == constants.TERMINAL_EVENT_TYPES
    assert {t for t, mark in sections.items() if "DROPPABLE" in mark} == constants.DROPPABLE_EVENT_TYPES


def test_log_levels_are_documented_in_order() -> None:
    text = read("CONTRACT_EMIT.md")
    levels = ", ".join(f"`{lv}`" for lv in constants.LOG_LEVELS)
    assert levels in text


def test_sdk_errors_are_documented() -> None:
    rows = table(read("CONTRACT_EMIT.md"), "| Exception | When | Effect |")
    documented = {re.match(r"`(\w+)`", row[0]).group(1) for row in rows}  # type: ignore[union-attr]
    sdk_errors = {
        errors.EmitValidationError,
        errors.TerminalEventError,
        errors.SinkFailedError,
        errors.StorageFilenameError,
        errors.StorageSizeError,
        errors.StoragePutError,
    }
    assert documented == {e.__name__ for e in sdk_errors}
    for name in documented:
        assert name in quarry_core.__all__, f"{name} must be importable from quarry_core"


# --------------------------------------------------------------------------- RUN


def test_outcome_exit_code_table_matches_code() -> None:
    rows = table(read("CONTRACT_RUN.md"), "| Outcome | Exit code |")
    documented = {backticked(o): code for o, code in rows}
    assert len(documented) == len(rows), "an outcome is documented twice"
    assert set(documented) == {o.value for o in outcomes.Outcome}
    for outcome in outcomes.Outcome:
        if outcome is outcomes.Outcome.CANCELED:
            # the signal decides: SIGINT or SIGTERM
            assert documented[outcome.value] == f"{int(outcomes.ExitCode.SIGINT)}/{int(outcomes.ExitCode.SIGTERM)}"
            assert outcomes.EXIT_CODES[outcome] in (outcomes.ExitCode.SIGINT, outcomes.ExitCode.SIGTERM)
        else:
            assert documented[outcome.value] == str(int(outcomes.EXIT_CODES[outcome])), outcome


def test_exit_code_table_covers_every_exit_code() -> None:
    rows = table(read("CONTRACT_RUN.md"), "| Exit code | Meaning |")
    codes = [int(code) for code, _ in rows]
    assert len(codes) == len(set(codes)), "an exit code is documented twice"
    assert set(codes) == {int(m) for m in outcomes.ExitCode}
    assert all(meaning for _, meaning in rows)


def test_run_states_are_documented() -> None:
    text = read("CONTRACT_RUN.md")
    states = {outcomes.state_for(None)} | {outcomes.state_for(o) for o in outcomes.Outcome}
    for state in states:
        assert f"`{state}`" in text, state


# --------------------------------------------------------------------------- POLICY


def test_droppable_set_line_matches_code() -> None:
    text = read("CONTRACT_POLICY.md")
    m = re.search(r"^DROPPABLE_EVENT_TYPES = \{(.*)\}$", text, re.MULTILINE)
    assert m, "CONTRACT_POLICY.md must list DROPPABLE_EVENT_TYPES on one line"
    names = [backticked(part.strip()) for part in m.group(1).split(",")]
    assert names == sorted(names), "list the droppable types sorted"
    assert set(names) == set(quarry_core.DROPPABLE_EVENT_TYPES) == set(constants.DROPPABLE_EVENT_TYPES)
    assert len(names) == len(set(names))


def test_policy_counter_table_matches_policy_stats() -> None:
    rows = table(read("CONTRACT_POLICY.md"), "| Field | Meaning |")
    documented: set[str] = set()
    for field_cell, _meaning in rows:
        documented |= set(re.findall(r"`(\w+)`", field_cell))
    assert documented == {f.name for f in attrs.fields(PolicyStats)}


# --------------------------------------------------------------------------- METRICS


def test_metrics_counter_table_matches_the_collector() -> None:
    from quarry_core.runtime.metrics import COUNTERS

    rows = table(read("CONTRACT_METRICS.md"), "| Counter | Increments when | Source |")
    names = [backticked(row[0]) for row in rows]
    assert names == list(COUNTERS), "same counters, same order as quarry_core.runtime.metrics.COUNTERS"
    assert all(n.endswith("_total") for n in names)
    for stat in ("events_received", "events_persisted", "events_dropped", "events_unflushed"):
        assert f"{stat}_total" in names
        assert stat in {f.name for f in attrs.fields(PolicyStats)}
    # one outcome counter per outcome family of CONTRACT_RUN
    for counter in ("runs_completed_total", "runs_failed_total", "runs_crashed_total", "runs_canceled_total"):
        assert counter in names


# --------------------------------------------------------------------------- INTEGRATION


def test_integration_plugin_table_matches_registration_kinds() -> None:
    from quarry_core.registrations import KINDS

    rows = table(
        read("CONTRACT_INTEGRATION.md"),
        "| Hook | Kind (`quarry plugins --kind`) | Record | Factory | First-party names |",
    )
    documented = {backticked(row[1]): (backticked(row[0]), backticked(row[2])) for row in rows}
    assert documented == {kind: (hook, record.__name__) for kind, (hook, record) in KINDS.items()}


# --------------------------------------------------------------------------- cross-references


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


LINKED_DOCS: list[Path] = sorted([*CONTRACTS.glob("*.md"), *(CONTRACTS.parent / "plugins").glob("*.md")])


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=[f"{p.parent.name}/{p.name}" for p in LINKED_DOCS])
def test_relative_links_and_anchors_resolve(doc: Path) -> None:
    for link in re.findall(r"\]\(([^)\s]+)\)", _without_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        assert target.exists(), f"{doc.name}: broken link {link}"
        if anchor and target.is_file():
            anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", _without_code(target.read_text("utf-8")), re.M)}
            assert anchor in anchors, f"{doc.name}: no heading for {link}"
