"""One release train: every member has the same static version and pins first-party dependencies with ==."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _members() -> list[Path]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [ROOT / m for m in root["tool"]["uv"]["workspace"]["members"]]


def test_versions_in_lockstep() -> None:
    import quarry_core

    versions = {}
    for member in _members():
        project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
        versions[project["name"]] = project["version"]
        for dep in project.get("dependencies", []):
            m = re.match(r"^(quarry-[a-z-]+)(.*)$", dep)
            if m:
                assert m.group(2) == f"=={quarry_core.__version__}", f"{project['name']}: {dep} must pin =="
        pkg = project["name"].replace("-", "_")
        init = (member / "src" / pkg / "__init__.py").read_text()
        assert f'__version__ = "{project["version"]}"' in init, f"{pkg}.__version__ differs from pyproject"
    assert set(versions.values()) == {quarry_core.__version__}, versions


def test_import_name_is_distribution_name() -> None:
    for member in _members():
        name = tomllib.loads((member / "pyproject.toml").read_text())["project"]["name"]
        assert (member / "src" / name.replace("-", "_") / "__init__.py").exists()
        assert (member / f"{name.replace('-', '_')}_tests").is_dir()
