"""Every public package states its surface in a sorted ``__all__`` that matches what it defines."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "quarry_core",
    "quarry_core.errors",
    "quarry_core.protocol",
    "quarry_core.interfaces",
    "quarry_core.registrations",
    "quarry_core.outcomes",
    "quarry_core.partitions",
    "quarry_core.units",
    "quarry_core.sdk",
]


def _isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_resolvable(name: str) -> None:
    mod = importlib.import_module(name)
    exported = list(mod.__all__)
    assert exported == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    for attr in exported:
        assert hasattr(mod, attr), f"{name}.{attr} is in __all__ but missing"


def test_core_root_exports() -> None:
    import quarry_core

    public = {n for n in dir(quarry_core) if not n.startswith("_") and n not in {"annotations", "pluggy", "logger"}}
    modules = {n for n in public if type(getattr(quarry_core, n)).__name__ == "module"}
    assert set(quarry_core.__all__) - {"__version__"} == public - modules
