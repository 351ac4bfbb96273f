"""quarry_lode states its surface in ``__all__`` lists sorted the ruff RUF022 way."""

from __future__ import annotations

import importlib
import types

import pytest

import quarry_lode

MODULES = [
    "quarry_lode",
    "quarry_lode.backend",
    "quarry_lode.cli",
    "quarry_lode.codecs",
    "quarry_lode.dataset",
    "quarry_lode.errors",
    "quarry_lode.escaping",
    "quarry_lode.gc",
    "quarry_lode.hooks",
    "quarry_lode.layout",
    "quarry_lode.manifest",
    "quarry_lode.pointer",
    "quarry_lode.reader",
    "quarry_lode.s3",
    "quarry_lode.settings",
    "quarry_lode.sidecar",
    "quarry_lode.snapshot",
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
        assert getattr(mod, attr) is not None, f"{name}.{attr} is in __all__ but missing"


def test_root_exports_match_public_names() -> None:
    for name in quarry_lode.__all__:
        getattr(quarry_lode, name)  # resolve the lazy names
    public = {
        n
        for n in dir(quarry_lode)
        if not n.startswith("_")
        and not isinstance(getattr(quarry_lode, n), types.ModuleType)
        and n not in {"annotations", "logger", "TYPE_CHECKING", "Any"}
    }
    assert set(quarry_lode.__all__) - {"__version__"} == public
