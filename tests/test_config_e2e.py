"""Configuration files for ``quarry run`` (cli.md §5): discovery, ``${VAR}`` expansion, precedence command line >
``QUARRY_*`` environment > config file > default, unknown keys and bad values exit 4 with nothing written, and
secrets read through ``${VAR}`` never appear in output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import SCRIPTS, read_table, run_id_from

_CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("QUARRY_") or k in ("QUARRY_NO_SANDBOX",)}


def _quarry(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env={**_CLEAN_ENV, **(env or {})}, timeout=120)


@pytest.mark.browser
def test_config_file_with_env_expansion_and_precedence(tmp_path: Path, site_url: str) -> None:
    data = tmp_path / "from-env-data"
    report = tmp_path / "report.json"
    (tmp_path / "quarry.toml").write_text(
        "\n".join(
            [
                "# every value below comes from the file unless a higher layer overrides it",
                'source = "${SRC:-cfg-source}"',
                'category = "from-config"',
                "timeout = 60",  # a bare number is seconds in a config file
                "[storage]",
                'path = "${DATA_DIR}"',
                'codec = "jsonl"',
                "[policy]",
                'name = "buffered"',
                'buffer_events = "${NBUF}"',
                'flush_mode = "at_least_once"',
            ]
        )
    )
    env = {"DATA_DIR": str(data), "NBUF": "100", "QUARRY_CATEGORY": "from-env"}
    job = json.dumps({"url": f"{site_url}/index.html"})
    res = _quarry(
        tmp_path,
        str(SCRIPTS / "ok.py"),
        "--job",
        job,
        "--report",
        str(report),
        "--source",
        "from-cli",
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = run_id_from(res.stdout)
    assert "policy=buffered, flush_mode=at_least_once" in res.stdout
    rows = [r for r in read_table(data, "runs") if r["run_id"] == run_id]
    final = max(rows, key=lambda r: r["updated_at"])
    assert final["source"] == "from-cli"  # command line beats the file's ${SRC:-...} default
    assert final["category"] == "from-env"  # QUARRY_CATEGORY beats the file
    assert final["policy"] == "buffered"
    assert json.loads(final["policy_config"])["buffer_events"] == 100  # "${NBUF}" coerced to an integer
    assert not (tmp_path / "quarry-data").exists()  # storage.path came from ${DATA_DIR}
    assert list(data.rglob("*.jsonl")), "storage.codec from the file"
    assert json.loads(report.read_text())["outcome"] == "success"


def test_unknown_key_exits_4_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "quarry.toml").write_text('[storage]\npath = "out"\n[policy]\nflush_modes = "two_phase"\n')
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"))
    assert res.returncode == 4, res.stderr
    assert (
        'config error in quarry.toml: unknown key "policy.flush_modes" (did you mean "policy.flush_mode"?)'
        in res.stderr
    )
    assert res.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quarry.toml"], "nothing may be written"


def test_config_type_error_and_environment_error_exit_4(tmp_path: Path) -> None:
    (tmp_path / "q.toml").write_text('[policy]\nbuffer_events = "${N}"\n')
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), "--config", "q.toml", env={"N": "ten"})
    assert res.returncode == 4
    assert 'config error in q.toml: policy.buffer_events: expected integer, got "ten"' in res.stderr
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), "--no-config", env={"QUARRY_BUFFER_EVENTS": "x"})
    assert res.returncode == 4
    assert 'QUARRY_BUFFER_EVENTS: expected integer, got "x"' in res.stderr
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), "--config", "q.toml", "--no-config")
    assert res.returncode == 4 and "--no-config cannot be combined with --config" in res.stderr
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), env={"QUARRY_CONFIG": "missing.toml"})
    assert res.returncode == 4 and "config file not found: missing.toml" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.toml"]


def test_secrets_from_the_environment_never_appear_in_output(tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55w0rd"
    (tmp_path / "quarry.yaml").write_text(
        "adapter:\n"
        "  headers:\n"
        "    Authorization: ${TOKEN}\n"
        "proxies:\n"
        "  pool:\n"
        "    endpoints:\n"
        "      - {protocol: http, host: proxy.example, port: 8080, username: u, password: '${PROXY_PW}'}\n"
    )
    res = _quarry(
        tmp_path,
        str(SCRIPTS / "ok.py"),
        "--config",
        "quarry.yaml",
        "--log-level",
        "debug",
        "--dry-run",
        env={"TOKEN": f"Bearer {secret}", "PROXY_PW": secret},
    )
    assert res.returncode == 0, res.stderr
    assert secret not in res.stderr + res.stdout
    (tmp_path / "quarry.yaml").write_text(
        "adapter:\n  headers:\n    Authorization: 42\nproxies:\n  pool:\n    endpoints:\n"
        "      - {protocol: http, host: h, port: 1, password: {nested: '${PROXY_PW}'}}\n"
    )
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), "--config", "quarry.yaml", env={"PROXY_PW": secret})
    assert res.returncode == 4
    assert "adapter.headers.Authorization: expected string, got <redacted>" in res.stderr
    assert secret not in res.stderr + res.stdout


def test_pyproject_tool_quarry_is_discovered_and_dry_run_uses_it(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.quarry]\nresolve_from = "${LIB_DIR}"\n[tool.quarry.log]\nlevel = "debug"\n'
    )
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), "--dry-run", env={"LIB_DIR": str(lib)})
    assert res.returncode == 0, res.stderr
    assert f"resolve-from: {lib.resolve()}" in res.stderr
    # the command line wins over the file, --no-config ignores it
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), "--dry-run", "--no-config", env={"LIB_DIR": str(lib)})
    assert res.returncode == 0 and "resolve-from: -" in res.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.quarry.log]\nlevel = "loud"\n')
    res = _quarry(tmp_path, str(SCRIPTS / "ok.py"), "--dry-run")
    assert res.returncode == 4 and "invalid log.level 'loud' (valid: debug, info, warning, error)" in res.stderr
