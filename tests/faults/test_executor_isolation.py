"""The executor never executes anything but the script it was given (issue 11, security).

Every test plants "bait": Python files that, if executed, write a sentinel file and abort. A real ``quarry run``
(the ``quarry`` console script, real executor, real Chromium where a page is used) must finish without any
sentinel appearing:

- job values, page content and enqueue params that look like code (Python, ``pickle``/``jsonpickle``-style
  objects, template syntax) are stored as the same plain data, never evaluated;
- modules in the working directory ``quarry run`` is started from never shadow the ones the executor imports
  (it starts as ``python -P -m quarry_executor``; without ``-P`` a ``signal.py`` there ran in the executor);
- ``QUARRY_*`` (and ``PYTHONSTARTUP``) variables naming another script change nothing;
- ``--dry-run`` imports the script once and calls neither ``run`` nor any hook, and imports no file beside it.
"""

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

import pytest

from e2e_helpers import events_of, run_id_from

QUARRY = str(Path(sys.executable).with_name("quarry"))  # the console script: no working directory on sys.path

#: modules the executor imports (many lazily, after start-up); bait files take these names
SHADOWED = ("signal", "json", "asyncio", "traceback", "playwright", "loguru", "cbor2", "attrs", "uuid", "base64")


def _bait(path: Path, sentinels: Path) -> None:
    name = path.stem
    path.write_text(
        f"import pathlib\npathlib.Path({str(sentinels / name)!r}).write_text('executed')\n"
        f"raise SystemExit('bait {name} was executed')\n"
    )


def _quarry(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "QUARRY_NO_BROWSER_REUSE": "1", **(env or {})}
    return subprocess.run(
        [QUARRY, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "sentinels"
    d.mkdir()
    yield d
    assert sorted(p.name for p in d.iterdir()) == [], "bait code was executed"


CODE_LIKE = {
    "python": "__import__('pathlib').Path('{sentinel}').write_text('eval')",
    "exec": "exec(\"open('{sentinel}', 'w').write('exec')\")",
    "lambda": "(lambda: __import__('os').system('touch {sentinel}'))()",
    "template": "{{{{ ''.__class__.__mro__[1].__subclasses__() }}}} ${{{{7*7}}}} #{{7*7}}",
    "shell": "$(touch {sentinel}) `touch {sentinel}`",
}


def _code_like(sentinel: Path) -> dict[str, Any]:
    values: dict[str, Any] = {k: v.format(sentinel=sentinel) for k, v in CODE_LIKE.items()}
    values["jsonpickle"] = {"py/object": "os.system", "py/reduce": [{"py/function": "os.system"}, ["true"]]}
    values["pickle_protocol"] = "cos\nsystem\n(S'touch " + str(sentinel) + "'\ntR."
    return values


@pytest.fixture
def page_server(tmp_path: Path, sentinels: Path) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    text = json.dumps(_code_like(sentinels / "page"))
    (site / "index.html").write_text(
        f"<html><body><pre id='payload'>{text.replace('&', '&amp;').replace('<', '&lt;')}</pre></body></html>"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


ECHO_SCRIPT = """
import json

async def run(ctx):
    await ctx.page.goto(ctx.job["url"])
    page = json.loads(await ctx.page.inner_text("#payload"))
    await ctx.emit.item(item_type="echo", data={"job": dict(ctx.job), "page": page})
    await ctx.emit.enqueue(ctx.job["python"], params={"job": dict(ctx.job), "page": page})
"""


def test_code_looking_job_values_page_content_and_enqueue_params_are_never_evaluated(
    tmp_path: Path, sentinels: Path, page_server: str
) -> None:
    script = tmp_path / "echo.py"
    script.write_text(ECHO_SCRIPT)
    job = {"url": page_server, **_code_like(sentinels / "job")}
    storage = tmp_path / "store"
    res = _quarry(["run", str(script), "--job", json.dumps(job), "--storage-path", str(storage)], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = events_of(storage, run_id_from(res.stdout))
    item = json.loads(next(r for r in rows if r["event_type"] == "item")["payload"])
    page = _code_like(sentinels / "page")
    assert item["data"] == {"job": job, "page": page}  # stored as the same plain data
    enqueue = json.loads(next(r for r in rows if r["event_type"] == "enqueue")["payload"])
    assert enqueue["target"] == job["python"] and enqueue["params"] == {"job": job, "page": page}


PLAIN_SCRIPT = """
import pathlib

pathlib.Path({marker!r}).open("a").write("imported\\n")


async def run(ctx):
    pathlib.Path({marker!r}).open("a").write("run\\n")
    await ctx.emit.item(item_type="ran", data={{"script": __file__}})
"""


def test_modules_in_the_working_directory_never_shadow_the_executors(tmp_path: Path, sentinels: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name in SHADOWED:
        _bait(cwd / f"{name}.py", sentinels)
    marker = tmp_path / "marker"
    script = tmp_path / "scripts" / "plain.py"
    script.parent.mkdir()
    script.write_text(PLAIN_SCRIPT.format(marker=str(marker)))
    storage = tmp_path / "store"
    res = _quarry(["run", str(script), "--storage-path", str(storage)], cwd=cwd)
    assert res.returncode == 0, res.stdout + res.stderr
    assert marker.read_text() == "imported\nrun\n"
    (item,) = [r for r in events_of(storage) if r["event_type"] == "item"]
    assert json.loads(item["payload"])["data"] == {"script": str(script)}

    dry = _quarry(["run", str(script), "--dry-run", "--storage-path", str(storage)], cwd=cwd)
    assert dry.returncode == 0 and dry.stderr.rstrip().endswith("Validation passed."), dry.stderr


def test_quarry_variables_naming_another_script_change_nothing(tmp_path: Path, sentinels: Path) -> None:
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    evil = evil_dir / "evil.py"
    _bait(evil, sentinels)
    marker = tmp_path / "marker"
    script = tmp_path / "good.py"
    script.write_text(PLAIN_SCRIPT.format(marker=str(marker)))
    env = {
        name: str(evil)
        for name in (
            "QUARRY_SCRIPT",
            "QUARRY_RUN_SCRIPT",
            "QUARRY_EXECUTOR_SCRIPT",
            "QUARRY_ENTRYPOINT",
            "QUARRY_JOB_SCRIPT",
            "PYTHONSTARTUP",
        )
    }
    env["QUARRY_RESOLVE_FROM"] = str(evil_dir)  # what the launcher sets for --resolve-from; a stale value is inert
    storage = tmp_path / "store"
    res = _quarry(["run", str(script), "--storage-path", str(storage)], cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert marker.read_text() == "imported\nrun\n"
    (item,) = [r for r in events_of(storage) if r["event_type"] == "item"]
    assert json.loads(item["payload"])["data"] == {"script": str(script)}


HOOKED_SCRIPT = """
import pathlib

MARK = pathlib.Path({marker!r})
MARK.open("a").write("imported\\n")


def _touch(name):
    MARK.open("a").write(name + "\\n")


def prepare(job):
    _touch("prepare")


async def before_run(ctx):
    _touch("before_run")


async def run(ctx):
    _touch("run")


def after_run(ctx):
    _touch("after_run")


def on_error(ctx, exc):
    _touch("on_error")


def before_terminal(ctx):
    _touch("before_terminal")


def cleanup(ctx):
    _touch("cleanup")
"""


def test_dry_run_imports_the_script_once_and_calls_nothing_in_it(tmp_path: Path, sentinels: Path) -> None:
    marker = tmp_path / "marker"
    script = tmp_path / "scripts" / "hooked.py"
    script.parent.mkdir()
    script.write_text(HOOKED_SCRIPT.format(marker=str(marker)))
    for name in ("helper", "conftest", "sitecustomize", "usercustomize", "__init__", "__main__", *SHADOWED):
        _bait(script.parent / f"{name}.py", sentinels)  # beside the script: never imported by a dry run
    storage = tmp_path / "store"
    res = _quarry(["run", str(script), "--dry-run", "--storage-path", str(storage)], cwd=script.parent)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Hooks: prepare, before_run, after_run, on_error, before_terminal, cleanup" in res.stderr
    assert marker.read_text() == "imported\n"  # top-level code once; run and every hook untouched
    assert not storage.exists()
