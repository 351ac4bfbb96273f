from __future__ import annotations

from quarry_lode.snapshot import is_snapshot_id, new_snapshot_id, snapshot_day


def test_format() -> None:
    sid = new_snapshot_id()
    assert is_snapshot_id(sid)
    assert len(sid) == 29
    assert new_snapshot_id(now_ns=1764093543123456789).startswith("01764093543123456789-")


def test_monotonic_within_process() -> None:
    ids = [new_snapshot_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_day_is_utc_date_of_the_id() -> None:
    assert snapshot_day("01764093543123456789-9f3a1c2e") == "2025-11-25"
    assert not is_snapshot_id("1764093543123456789-9f3a1c2e")
    assert not is_snapshot_id("01764093543123456789-9F3A1C2E")
