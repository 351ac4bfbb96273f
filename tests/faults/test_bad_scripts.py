"""Scripts that cannot run: a real run ends as ``executor_crash`` (exit 2) naming the problem, nothing but the run's
own records is written; ``--dry-run`` says the same on stderr with exit 1 and writes nothing at all."""

from __future__ import annotations

import pytest

from e2e_helpers import SCRIPTS, events_of, final_run_record, run_id_from

CASES = [
    ("no_run.py", "missing run function"),
    ("sync_run.py", 'run must be defined with "async def"'),
    ("hook_not_callable.py", "prepare hook is not callable"),
    ("import_fails.py", "import failed: ModuleNotFoundError: No module named 'does_not_exist_quarry'"),
]


@pytest.mark.parametrize(("script", "reason"), CASES, ids=[c[0] for c in CASES])
def test_unloadable_script_is_a_crash_with_the_reason(quarry, storage, script: str, reason: str) -> None:
    path = SCRIPTS / "bad" / script
    res = quarry(path)
    assert res.code == 2, res.stdout + res.stderr
    assert f'Message: Failed to load script "{path}": {reason}' in res.stdout
    run_id = run_id_from(res.stdout)
    assert events_of(storage, run_id) == [], "no script event: the script never ran"
    record = final_run_record(storage, run_id)
    assert (record["outcome"], record["exit_code"]) == ("executor_crash", 2)


@pytest.mark.parametrize(("script", "reason"), CASES, ids=[c[0] for c in CASES])
def test_dry_run_rejects_it_and_writes_nothing(quarry, storage, script: str, reason: str) -> None:
    res = quarry(SCRIPTS / "bad" / script, "--dry-run")
    assert res.code == 1, res.stdout + res.stderr
    assert "✗ Script load failed: " in res.stderr and reason in res.stderr
    assert res.stderr.rstrip().endswith("Validation failed.")
    assert not storage.exists()
