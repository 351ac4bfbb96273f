"""Wire faults from a fake executor (passed as --executor-python): each ends in the contract's outcome,
and every event committed before the fault stays readable."""

from __future__ import annotations

import pytest

from e2e_helpers import events_of, read_table, run_id_from

CASES = [
    # scenario, exit code, outcome, message fragment, items persisted
    ("ok", 0, "success", "run completed", 3),
    ("truncated", 2, "executor_crash", "stream error: truncated frame", 3),
    ("oversized", 2, "executor_crash", "stream error: frame length 16777216 exceeds the limit", 3),
    ("garbage", 2, "executor_crash", "stream error: undecodable CBOR", 3),
    ("trailing", 2, "executor_crash", "stream error: undecodable CBOR: 2 bytes after the data item", 3),
    (
        "version",
        3,
        "version_mismatch",
        "contract version mismatch: executor sent 2.0.0, runtime supports 1.0",
        3,
    ),
    ("seq_gap", 2, "executor_crash", "stream error: sequence violation: expected 4, got 5", 3),
    ("wrong_run_id", 2, "executor_crash", "stream error: invalid envelope: run_id", 3),
    ("clean_exit_no_terminal", 2, "executor_crash", "executor exited cleanly without terminal event", 3),
    ("after_terminal", 2, "executor_crash", "protocol violation: item event after terminal (seq 5)", 3),
]


@pytest.mark.parametrize(("scenario", "code", "outcome", "fragment", "items"), CASES, ids=[c[0] for c in CASES])
def test_fake_executor_faults(quarry, storage, fake_python, scenario, code, outcome, fragment, items):
    script = storage.parent / "unused.py"
    script.write_text("async def run(ctx):\n    pass\n")
    res = quarry(script, "--executor-python", fake_python, env={"FAKE_SCENARIO": scenario})
    assert res.code == code, res.stdout + res.stderr
    assert f"outcome={outcome}" in res.stdout
    assert fragment in res.stdout, res.stdout
    run_id = run_id_from(res.stdout)
    rows = events_of(storage, run_id)
    assert [r["event_type"] for r in rows].count("item") == items
    final = max(read_table(storage, "runs", run_id=run_id), key=lambda r: r["updated_at"])
    assert final["outcome"] == outcome and final["exit_code"] == code
    metrics = read_table(storage, "metrics", run_id=run_id)[0]
    assert metrics["executor_crash_total"] == (1 if outcome == "executor_crash" else 0)
    if scenario in ("garbage", "trailing"):
        assert metrics["ipc_decode_errors_total"] == 1
