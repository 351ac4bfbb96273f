import inspect

import quarry_policy_strict
from quarry_policy_strict import hooks


def _isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _public(module: object) -> list[str]:
    names = [n for n in vars(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n))]
    return sorted([*names, "__version__"] if hasattr(module, "__version__") else names, key=_isort_key)


def test_package_all_is_sorted_public_names() -> None:
    assert quarry_policy_strict.__all__ == _public(quarry_policy_strict)


def test_hooks_all() -> None:
    assert set(hooks.__all__) <= set(vars(hooks))
