from __future__ import annotations

import importlib
import types

import quarry_lode


def test_all_is_sorted_and_complete() -> None:
    assert quarry_lode.__all__ == sorted(quarry_lode.__all__)
    public = sorted(
        n
        for n in dir(quarry_lode)
        if (not n.startswith("_") or n == "__version__")
        and not isinstance(getattr(quarry_lode, n), types.ModuleType)
        and n not in {"annotations", "logger", "TYPE_CHECKING", "Any"}
    )
    assert public == quarry_lode.__all__


def test_every_export_resolves() -> None:
    for name in quarry_lode.__all__:
        assert getattr(quarry_lode, name) is not None


def test_module_all_lists_are_sorted() -> None:
    for mod in (
        "backend",
        "codecs",
        "dataset",
        "errors",
        "escaping",
        "layout",
        "manifest",
        "pointer",
        "reader",
        "settings",
        "sidecar",
        "snapshot",
    ):
        names = importlib.import_module(f"quarry_lode.{mod}").__all__
        assert names == sorted(names), mod
        for name in names:
            assert hasattr(importlib.import_module(f"quarry_lode.{mod}"), name), (mod, name)
