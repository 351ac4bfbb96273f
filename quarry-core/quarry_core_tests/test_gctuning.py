"""quarry_core.gctuning: collector settings of Quarry's own processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from quarry_core import gctuning


@pytest.fixture
def pristine_gc() -> Iterator[None]:
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    frozen = gctuning._frozen[0]
    gctuning._frozen[0] = False
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        (gc.enable if enabled else gc.disable)()
        gctuning._frozen[0] = frozen


@pytest.mark.usefixtures("pristine_gc")
def test_tune_gc_raises_only_the_young_threshold() -> None:
    gc.set_threshold(700, 11, 12)
    assert gctuning.tune_gc({}) is True
    assert gc.get_threshold() == (gctuning.YOUNG_THRESHOLD, 11, 12)


@pytest.mark.usefixtures("pristine_gc")
@pytest.mark.parametrize("value", ["default", "DEFAULT", " default "])
def test_quarry_gc_default_changes_nothing(value: str) -> None:
    gc.set_threshold(700, 10, 10)
    assert gctuning.tune_gc({"QUARRY_GC": value}) is False
    assert gctuning.freeze_startup({"QUARRY_GC": value}) is False
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("pristine_gc")
def test_a_disabled_collector_stays_as_the_user_left_it() -> None:
    gc.set_threshold(700, 10, 10)
    gc.disable()
    assert gctuning.tune_gc({}) is False
    assert gctuning.freeze_startup({}) is False
    assert gc.get_threshold() == (700, 10, 10) and not gc.isenabled()
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("pristine_gc")
def test_freeze_startup_freezes_what_is_alive_once() -> None:
    assert gc.get_freeze_count() == 0
    assert gctuning.freeze_startup({}) is True
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # pytest and everything imported so far
    kept = [[i] for i in range(5000)]  # new objects after the freeze stay collectable
    assert gctuning.freeze_startup({}) is False  # a warm executor's later runs freeze nothing more
    assert gc.get_freeze_count() == frozen
    assert len(kept) == 5000
