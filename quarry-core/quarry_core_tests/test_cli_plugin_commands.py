"""Command groups contributed through ``quarry_cli_commands`` are mounted as ``quarry <name>`` by the root CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from quarry_core import hookimpl
from quarry_core.cli import main
from quarry_core.plugins import PluginHost
from quarry_core.registrations import CliCommandPlugin


def _tools_app() -> typer.Typer:
    app = typer.Typer(name="tools", add_completion=False)

    @app.command("echo")
    def echo(word: str, code: int = typer.Option(0, "--code")) -> int:
        typer.echo(f"echo {word}")
        return code

    return app


def _broken() -> typer.Typer:
    raise RuntimeError("missing dependency")


class _Plugin:
    @hookimpl
    def quarry_cli_commands(self) -> Iterator[CliCommandPlugin]:
        yield CliCommandPlugin(name="tools", factory=_tools_app, summary="test tools")
        yield CliCommandPlugin(name="broken", factory=_broken)
        yield CliCommandPlugin(name="version", factory=_tools_app)  # a built-in name: the built-in wins


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    built = PluginHost.build(load_entrypoints=False, strict=True, disable=[], allow=None, trace=False)
    built.register(_Plugin(), name="test-tools", distribution="test-dist")
    monkeypatch.setattr(PluginHost, "build", classmethod(lambda cls, **_: built))
    return built


def test_plugin_group_is_mounted_and_its_return_value_is_the_exit_code(
    host: PluginHost, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tools", "echo", "hi"]) == 0
    assert capsys.readouterr().out == "echo hi\n"
    assert main(["tools", "echo", "hi", "--code", "3"]) == 3


def test_plugin_usage_errors_exit_4(host: PluginHost, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "echo"]) == 4
    assert "Missing argument" in capsys.readouterr().err


def test_a_broken_factory_is_a_usage_error_naming_it(host: PluginHost, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["broken"]) == 4
    assert 'command "broken" from test-dist failed to load: missing dependency' in capsys.readouterr().err


def test_built_in_commands_win(host: PluginHost, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--format", "json"]) == 0
    assert '"contract_version"' in capsys.readouterr().out


def test_unknown_and_uninstalled_first_party_names(host: PluginHost, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 4
    assert "No such command 'nope'" in capsys.readouterr().err
    assert main(["temporal"]) == 4
    assert "pip install quarry-temporal" in capsys.readouterr().err
