"""Every hookspec is documented in ``docs/plugins/hooks.md`` and nothing else is (datasette's
``test_plugin_hooks_are_documented``)."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy
import pytest

from quarry_core import hookspecs
from quarry_core.registrations import KINDS

HOOKS_MD = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "hooks.md"


def hookspec_names() -> set[str]:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    names = {name for name in vars(pm.hook) if not name.startswith("_")}
    # the same set, found without pluggy: module functions carrying the spec marker
    marked = {
        name
        for name, obj in vars(hookspecs).items()
        if name.startswith("quarry_") and callable(obj) and hasattr(obj, f"{hookspecs.PROJECT_NAME}_spec")
    }
    assert names == marked
    return names


def documented_sections() -> dict[str, str]:
    """``## heading`` -> the text under it, for every second-level heading."""
    text = HOOKS_MD.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_there_are_hookspecs() -> None:
    assert len(hookspec_names()) >= 10


def test_every_hookspec_has_a_heading() -> None:
    missing = hookspec_names() - set(documented_sections())
    assert not missing, f"hookspecs without a section in docs/plugins/hooks.md: {sorted(missing)}"


def test_no_heading_for_a_hook_that_does_not_exist() -> None:
    extra = set(documented_sections()) - hookspec_names()
    assert not extra, f"docs/plugins/hooks.md documents hooks that do not exist: {sorted(extra)}"


def test_headings_are_unique() -> None:
    text = HOOKS_MD.read_text(encoding="utf-8")
    heads = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert len(heads) == len(set(heads))


@pytest.mark.parametrize("hook", sorted(hookspec_names()))
def test_each_section_has_an_example_implementing_that_hook(hook: str) -> None:
    body = documented_sections().get(hook)
    assert body is not None, f"{hook}: no section"
    assert "```python" in body, f"{hook}: add an example"
    assert "@hookimpl" in body, f"{hook}: the example must use @hookimpl"
    assert re.search(rf"^(async )?def {hook}\(", body, flags=re.MULTILINE), f"{hook}: the example must define {hook}"


@pytest.mark.parametrize(("kind", "hook", "record"), [(k, h, r) for k, (h, r) in sorted(KINDS.items())])
def test_registration_sections_name_record_and_factory(kind: str, hook: str, record: type) -> None:
    body = documented_sections().get(hook)
    assert body is not None, f"{hook}: no section"
    assert f"**Record:** `{record.__name__}(" in body, f"{hook}: name the record type {record.__name__}"
    assert "**Factory:** `factory(" in body, f"{hook}: give the factory signature"
    assert f"yield {record.__name__}(" in body, f"{hook}: the example must yield a {record.__name__}"


def test_observer_sections_name_their_arguments() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registration_hooks = {hook for hook, _ in KINDS.values()}
    sections = documented_sections()
    for name in hookspec_names() - registration_hooks:
        spec = getattr(pm.hook, name).spec
        assert spec is not None
        assert name in sections, f"{name}: no section"
        for arg in spec.argnames:
            assert f"`{arg}: " in sections[name], f"{name}: document the argument {arg!r}"
