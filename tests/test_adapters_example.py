"""A third-party adapter the way a stranger ships one: ``examples/quarry-adapter-example`` is its own distribution
(not a workspace member), registered through the ``quarry`` entry point. Built as a wheel and installed with the
built wheels of core, executor and lode into a fresh virtualenv, it works with ``quarry run --adapter example``;
a broken plugin installed beside it is a load error in ``quarry plugins`` and breaks no command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import FAKES, ROOT, uv_path

EXAMPLE = ROOT / "examples" / "quarry-adapter-example"

BROKEN_PYPROJECT = """\
[project]
name = "quarry-plugin-broken"
version = "0.0.1"
requires-python = ">=3.11"
dependencies = ["quarry-core>=0.1,<0.2"]

[project.entry-points.quarry]
plugin-broken = "quarry_plugin_broken.hooks"

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/quarry_plugin_broken"]
"""


def test_the_example_packages_own_tests_pass() -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "quarry_adapter_example_tests")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def plugin_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the example adapter and of a plugin whose hooks module fails to import."""
    dist = tmp_path_factory.mktemp("plugin-dist")
    broken = tmp_path_factory.mktemp("broken")
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    package = broken / "src" / "quarry_plugin_broken"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "hooks.py").write_text('raise RuntimeError("broken on purpose")\n')
    for source in (EXAMPLE, broken):
        subprocess.run(
            [uv_path(), "build", str(source), "--wheel", "-o", str(dist), "-q"], check=True, timeout=300, cwd=source
        )
    return dist


@pytest.mark.slow
def test_example_adapter_from_built_wheels_in_a_fresh_virtualenv(
    wheels: Path, plugin_wheels: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([uv_path(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_")}
    env["VIRTUAL_ENV"] = str(venv)
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    subprocess.run(
        [
            uv_path(), "pip", "install", "-q", "--find-links", str(wheels), "--find-links", str(plugin_wheels),
            "quarry-core==0.1.0", "quarry-policy-strict==0.1.0", "quarry-adapter-example", "quarry-plugin-broken",
        ],
        check=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    quarry = str(venv / "bin" / "quarry")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([quarry, *args], capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)

    listing = run("plugins", "-f", "json")
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    example = [p for p in data["plugins"] if p["name"] == "example"]
    assert example and example[0]["kind"] == "notification_adapter"
    assert example[0]["distribution"] == "quarry-adapter-example"
    (error,) = data["load_errors"]
    assert error["entry_point"] == "plugin-broken" and error["distribution"] == "quarry-plugin-broken"
    assert "broken on purpose" in error["error"]
    assert run("version", "-f", "json").returncode == 0

    # the fake executor speaks the real protocol (no browser needed): a wrapper makes it the executor's python
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!/bin/sh\nexec {venv / 'bin' / 'python'} {FAKES / 'fake_executor.py'}\n")
    fake.chmod(0o755)
    script = tmp_path / "job.py"
    script.write_text("async def run(ctx):\n    pass\n")
    out = tmp_path / "runs.jsonl"
    base = ["run", str(script), "--executor-python", str(fake), "--storage-path", str(tmp_path / "data"), "--quiet"]
    ok = run(
        *base, "--adapter", "example", "--adapter-url", f"file://{out}",
        "--adapter-option", "fields=run_id,outcome,exit_code", "--adapter-option", "fail_first=1",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert 'plugin "plugin-broken" from quarry-plugin-broken 0.0.1 failed to load' in ok.stderr
    (line,) = out.read_text().splitlines()
    body = json.loads(line)
    assert list(body) == ["run_id", "outcome", "exit_code"]
    assert body["outcome"] == "success" and body["exit_code"] == 0
    # the option schema is enforced for a third-party adapter too
    bad = run(*base, "--adapter", "example", "--adapter-url", str(out), "--adapter-option", "fail_first=many")
    assert bad.returncode == 4 and "example option fail_first" in bad.stderr
    unknown = run(*base, "--adapter", "example", "--adapter-url", str(out), "--adapter-option", "colour=blue")
    assert unknown.returncode == 4 and 'unknown option "colour" (known: fail_first, fields)' in unknown.stderr
    assert len(out.read_text().splitlines()) == 1
