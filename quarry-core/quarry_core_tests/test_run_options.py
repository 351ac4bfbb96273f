"""``quarry run`` option resolution: command line > ``QUARRY_*`` environment > config file > typer default, for
every configurable option, in one place (``quarry_core.cli.run_options.resolve_options``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from quarry_core.cli import app
from quarry_core.cli.run_options import CONFIG_OPTIONS, RunOptions, resolve_options
from quarry_core.config import SCHEMA, field_for
from quarry_core.errors import ConfigError


def _resolve(argv: list[str], env: dict[str, str] | None = None) -> RunOptions:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    ctx = command.make_context("run", ["script.py", *argv])
    return resolve_options(RunOptions.from_context(ctx), environ=env or {})


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_every_config_option_names_a_schema_key() -> None:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    params = {p.name for p in command.params}
    for name, option in CONFIG_OPTIONS.items():
        assert name in params, f"{name} is not a parameter of quarry run"
        assert field_for(option.key) is not None, f"{option.key} is not in the config schema"
    assert SCHEMA.fields  # sanity


@pytest.mark.parametrize(
    ("cli", "env", "config", "expected"),
    [
        ([], {}, False, 0.0),
        ([], {}, True, 10.0),
        ([], {"QUARRY_TIMEOUT": "20s"}, True, 20.0),
        (["--timeout", "30s"], {"QUARRY_TIMEOUT": "20s"}, True, 30.0),
        (["--timeout", "0"], {"QUARRY_TIMEOUT": "20s"}, True, 0.0),  # a given 0 still wins
    ],
)
def test_precedence(tmp_path: Path, cli: list[str], env: dict[str, str], config: bool, expected: float) -> None:
    if config:
        (tmp_path / "quarry.toml").write_text("timeout = 10\n")
    opts = _resolve(cli, env)
    assert opts.value("timeout") == expected
    assert opts.config_path == ((tmp_path / "quarry.toml") if config else None)


def test_defaults_come_from_the_typer_options() -> None:
    opts = _resolve([])
    assert opts.value("cancel_grace") == 5.0
    assert opts.value("policy") == "strict"
    assert opts.value("storage_path") == "./quarry-data"
    assert opts.value("final_flush_timeout") == 30.0
    assert opts.value("quiet") is False
    assert not opts.config.has("error_snapshot")  # a --no-x flag left off sets nothing


def test_string_maps_merge_per_key_and_flags_invert(tmp_path: Path) -> None:
    (tmp_path / "quarry.toml").write_text('[storage.options]\na = "1"\nb = "2"\n')
    opts = _resolve(["--storage-option", "a=9"], {"QUARRY_STORAGE_OPTION": "b=3,c=4"})
    assert opts.config.get("storage.options") == {"a": "9", "b": "3", "c": "4"}
    assert _resolve(["--no-error-snapshot"]).config.get("error_snapshot") is False
    assert _resolve([], {"QUARRY_NO_ERROR_SNAPSHOT": "1"}).config.get("error_snapshot") is False


def test_config_only_keys_are_visible(tmp_path: Path) -> None:
    (tmp_path / "quarry.toml").write_text('[adapter]\ntype = "webhook"\nheaders = {X-Token = "${TOKEN}"}\n')
    opts = _resolve([], {"TOKEN": "t0k"})
    assert opts.config.get("adapter.headers") == {"X-Token": "t0k"}


def test_cli_parse_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match="--buffer-bytes: invalid size"):
        _resolve(["--buffer-bytes", "lots"])
    with pytest.raises(ConfigError, match='invalid --storage-option "novalue": expected KEY=VALUE'):
        _resolve(["--storage-option", "novalue"])
    with pytest.raises(ConfigError, match="invalid --adapter-header <redacted>: expected KEY=VALUE") as info:
        _resolve(["--adapter-header", "Authorization: Bearer s3cret"])
    assert "s3cret" not in str(info.value)


def test_explicit_config_via_environment_and_no_config(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("category: from-yaml\n")
    assert _resolve([], {"QUARRY_CONFIG": "other.yaml"}).value("category") == "from-yaml"
    assert _resolve(["--no-config"], {"QUARRY_CONFIG": "other.yaml"}).value("category") == "default"
    (tmp_path / "quarry.toml").write_text("category = 1\n")
    with pytest.raises(ConfigError, match=r"config error in quarry\.toml: category: expected string, got 1"):
        _resolve([])


def test_from_cli_marks_non_none_as_given() -> None:
    opts = RunOptions.from_cli(timeout="2s", category=None)
    assert opts.given == frozenset({"timeout"})
    resolved: Any = resolve_options(opts, environ={})
    assert resolved.value("timeout") == 2.0
