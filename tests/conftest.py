"""Fixtures for the cross-distribution end-to-end tests: a real HTTP server on 127.0.0.1 serving the bundled
site, and a runner for ``quarry run`` as a subprocess (real executor, real Chromium, real files)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from e2e_helpers import FAKES, ROOT, SCRIPTS, SITE

# Each test's ``quarry run`` launches its own browser, as before browser reuse existed: a shared reuse server
# would outlive the test and couple tests run by different sessions. tests/test_browser_reuse*.py opt back in.
os.environ.setdefault("QUARRY_NO_BROWSER_REUSE", "1")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    """Base URL of the bundled demo site served on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@attrs.frozen
class RunResult:
    code: int
    stdout: str
    stderr: str
    storage: Path

    def summary_value(self, label: str) -> str:
        for line in self.stdout.splitlines():
            if line.startswith(f"{label}: "):
                return line.split(": ", 1)[1]
        raise AssertionError(f"{label!r} not in summary:\n{self.stdout}")


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    return tmp_path / "quarry-data"


@pytest.fixture
def quarry(storage: Path) -> Any:
    """Run ``quarry run`` in a subprocess: ``quarry(script, *args, job=None, timeout=120) -> RunResult``."""

    def run(
        script: str | Path,
        *args: str,
        job: dict[str, Any] | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        storage_path: Path | None = None,
    ) -> RunResult:
        script_path = Path(script)
        if not script_path.is_absolute() and not script_path.exists():
            script_path = SCRIPTS / script_path
        target = storage_path or storage
        cmd: list[str] = [
            sys.executable,
            "-m",
            "quarry_core.cli",
            "run",
            str(script_path),
            "--storage-path",
            str(target),
        ]
        if job is not None:
            cmd += ["--job", json.dumps(job)]
        cmd += list(args)
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT)
        return RunResult(proc.returncode, proc.stdout, proc.stderr, target)

    return run


@pytest.fixture
def fake_python(tmp_path: Path) -> str:
    """An executable that behaves as ``<python> -m quarry_executor`` but runs the fake executor."""
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKES / 'fake_executor.py'}\n")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of every workspace member, built once per session (``uv build --all-packages --no-sources``)."""
    from e2e_helpers import uv_path

    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv_path(), "build", "--all-packages", "--no-sources", "--wheel", "-o", str(dist), "-q"],
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    return dist
