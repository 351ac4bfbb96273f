"""Configuration files (cli.md §5): discovery, parsing, schema, ``${VAR}`` expansion, environment and precedence."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quarry_core.config import (
    ENV_VARS,
    SCHEMA,
    ConfigFile,
    ConfigView,
    Kind,
    Table,
    env_layer,
    env_value,
    expand_vars,
    explicit_config_path,
    load_config,
    merge_layers,
)
from quarry_core.errors import ConfigError

NO_ENV: dict[str, str] = {}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, *, name: str = "quarry.toml", env: dict[str, str] | None = None) -> ConfigFile:
    """Write ``text`` as the discovered ``quarry.toml`` (or an explicit file for other names) and load it."""
    write(tmp_path, name, text)
    explicit = None if name == "quarry.toml" else name
    return load_config(explicit=explicit, cwd=tmp_path, environ=NO_ENV if env is None else env)


def error(tmp_path: Path, text: str, *, name: str = "quarry.toml", env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, name=name, env=env)
    return str(info.value)


def _has_yaml() -> bool:
    return importlib.util.find_spec("yaml") is not None


yaml_required = pytest.mark.skipif(not _has_yaml(), reason='needs PyYAML (pip install "quarry-core[yaml]")')


# ---------------------------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------------------------


def test_no_file_gives_empty_config(tmp_path: Path) -> None:
    cfg = load_config(explicit=None, cwd=tmp_path, environ=NO_ENV)
    assert cfg.path is None
    assert cfg.values == {}
    assert cfg.flat() == {}


def test_quarry_toml_beats_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "quarry.toml", 'category = "from-quarry"\n')
    write(tmp_path, "pyproject.toml", '[tool.quarry]\ncategory = "from-pyproject"\n')
    cfg = load_config(explicit=None, cwd=tmp_path, environ=NO_ENV)
    assert cfg.path == tmp_path / "quarry.toml"
    assert cfg.get("category") == "from-quarry"


def test_pyproject_tool_quarry_is_discovered(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n[tool.quarry.policy]\nname = "buffered"\n')
    cfg = load_config(explicit=None, cwd=tmp_path, environ=NO_ENV)
    assert cfg.path == tmp_path / "pyproject.toml"
    assert cfg.get("policy.name") == "buffered"


def test_pyproject_without_tool_quarry_is_ignored_when_discovered(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n[tool.ruff]\nline-length = 1\n')
    cfg = load_config(explicit=None, cwd=tmp_path, environ=NO_ENV)
    assert cfg.path is None
    assert cfg.values == {}


def test_pyproject_without_tool_quarry_is_an_error_when_explicit(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"^config error in pyproject.toml: no \[tool.quarry\] table$"):
        load_config(explicit="pyproject.toml", cwd=tmp_path, environ=NO_ENV)


def test_explicit_pyproject_with_tool_quarry(tmp_path: Path) -> None:
    write(tmp_path, "sub/pyproject.toml", "[tool.quarry]\nquiet = true\n")
    cfg = load_config(explicit="sub/pyproject.toml", cwd=tmp_path, environ=NO_ENV)
    assert cfg.values == {"quiet": True}


def test_pyproject_errors_use_keys_relative_to_tool_quarry(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.quarry.policy]\nflush_modes = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(explicit=None, cwd=tmp_path, environ=NO_ENV)
    assert str(info.value) == (
        'config error in pyproject.toml: unknown key "policy.flush_modes" (did you mean "policy.flush_mode"?)'
    )


def test_tool_quarry_must_be_a_table(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool]\nquarry = 5\n")
    with pytest.raises(ConfigError, match=r"tool.quarry: expected table, got 5"):
        load_config(explicit=None, cwd=tmp_path, environ=NO_ENV)


def test_discovery_looks_only_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path, "quarry.toml", 'category = "parent"\n')
    child = tmp_path / "child"
    child.mkdir()
    assert load_config(explicit=None, cwd=child, environ=NO_ENV).path is None


def test_yaml_is_never_discovered(tmp_path: Path) -> None:
    write(tmp_path, "quarry.yaml", "category: x\n")
    write(tmp_path, "quarry.yml", "category: x\n")
    assert load_config(explicit=None, cwd=tmp_path, environ=NO_ENV).path is None


def test_explicit_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config file not found: nope.toml$"):
        load_config(explicit="nope.toml", cwd=tmp_path, environ=NO_ENV)


def test_explicit_directory(tmp_path: Path) -> None:
    (tmp_path / "d.toml").mkdir()
    with pytest.raises(ConfigError, match=r"^config file is not a file: d.toml$"):
        load_config(explicit="d.toml", cwd=tmp_path, environ=NO_ENV)


def test_explicit_path_beats_discovery(tmp_path: Path) -> None:
    write(tmp_path, "quarry.toml", 'category = "discovered"\n')
    other = write(tmp_path, "conf/other.toml", 'category = "explicit"\n')
    cfg = load_config(explicit=other, cwd=tmp_path, environ=NO_ENV)
    assert cfg.path == other
    assert cfg.get("category") == "explicit"


def test_no_config_with_explicit_is_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path, "quarry.toml", "")
    with pytest.raises(ConfigError, match=r"^--no-config cannot be combined with --config$"):
        load_config(explicit="quarry.toml", no_config=True, cwd=tmp_path, environ=NO_ENV)


def test_no_config_disables_discovery(tmp_path: Path) -> None:
    write(tmp_path, "quarry.toml", "bogus = 1\n")
    cfg = load_config(explicit=None, no_config=True, cwd=tmp_path, environ=NO_ENV)
    assert cfg.path is None
    assert cfg.values == {}


@pytest.mark.parametrize("name", ["quarry.json", "quarry.ini", "quarry", "quarry.toml.bak"])
def test_other_extensions_are_rejected(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "{}")
    with pytest.raises(ConfigError, match="unsupported config file type"):
        load_config(explicit=name, cwd=tmp_path, environ=NO_ENV)


def test_explicit_config_path_sources() -> None:
    env = {"QUARRY_CONFIG": "env.toml"}
    assert explicit_config_path("cli.toml", no_config=False, environ=env) == "cli.toml"
    assert explicit_config_path(None, no_config=False, environ=env) == "env.toml"
    assert explicit_config_path(None, no_config=True, environ=env) is None  # --no-config beats the environment
    assert explicit_config_path("cli.toml", no_config=True, environ=env) == "cli.toml"  # load_config rejects it
    assert explicit_config_path(None, no_config=False, environ={"QUARRY_CONFIG": ""}) is None


@pytest.mark.parametrize("text", ["", "   \n\t\n", "# only a comment\n\n  # another\n"])
def test_empty_files_are_valid(tmp_path: Path, text: str) -> None:
    cfg = load(tmp_path, text)
    assert cfg.path == tmp_path / "quarry.toml"
    assert cfg.values == {}


@yaml_required
@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n"])
def test_empty_yaml_files_are_valid(tmp_path: Path, text: str) -> None:
    assert load(tmp_path, text, name="q.yaml").values == {}


# ---------------------------------------------------------------------------------------------------------------
# Parsing and YAML
# ---------------------------------------------------------------------------------------------------------------


def test_toml_parse_error_names_file_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, 'category = "x"\n\n[policy\nname = 1\n')
    assert message.startswith("config error in quarry.toml: line 3: ")


def test_toml_parse_error_for_explicit_file_uses_given_path(tmp_path: Path) -> None:
    message = error(tmp_path, "a = = 1\n", name="conf/q.toml")
    assert message.startswith("config error in conf/q.toml: line 1: ")


def test_toml_duplicate_key_is_a_parse_error(tmp_path: Path) -> None:
    assert error(tmp_path, 'source = "a"\nsource = "b"\n').startswith("config error in quarry.toml: line 2: ")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "quarry.toml").write_bytes(b'source = "a"\ncategory = "\xff"\n')
    with pytest.raises(ConfigError, match=r"^config error in quarry.toml: line 2: not valid UTF-8$"):
        load_config(explicit=None, cwd=tmp_path, environ=NO_ENV)


FULL_YAML = """\
quiet: false
timeout: 90
policy:
  name: buffered
  buffer_events: 100
  buffer_bytes: 1MiB
  flush_interval: 1.5s
storage:
  path: ./data
  options:
    anon: true
adapter:
  type: webhook
  headers:
    Authorization: Bearer x
events:
  sinks:
    - type: redis
      url: redis://localhost
      ttl: -1
proxies:
  residential:
    strategy: random
    endpoints:
      - {protocol: http, host: p1.example, port: 8080}
"""


@yaml_required
@pytest.mark.parametrize("name", ["q.yaml", "q.yml", "Q.YAML"])
def test_yaml_file(tmp_path: Path, name: str) -> None:
    cfg = load(tmp_path, FULL_YAML, name=name)
    assert cfg.path == tmp_path / name
    assert cfg.get("quiet") is False
    assert cfg.get("timeout") == 90.0
    assert cfg.get("policy.buffer_bytes") == 2**20
    assert cfg.get("policy.flush_interval") == 1.5
    assert cfg.get("storage.options") == {"anon": True}
    assert cfg.get("adapter.headers") == {"Authorization": "Bearer x"}
    assert cfg.get("events.sinks[0].ttl") == -1.0
    assert cfg.get("proxies.residential.endpoints[0].port") == 8080


@yaml_required
def test_yaml_parse_error_names_line(tmp_path: Path) -> None:
    message = error(tmp_path, "category: x\npolicy:\n  name: [unclosed\n", name="q.yaml")
    assert message.startswith("config error in q.yaml: line ")
    assert "unclosed" not in message  # the offending text is not echoed (it could be a secret)


@yaml_required
def test_yaml_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    message = error(tmp_path, "policy:\n  name: a\n  name: b\n", name="q.yaml")
    assert message == 'config error in q.yaml: line 3: duplicate key "name"'


@yaml_required
def test_yaml_top_level_must_be_a_table(tmp_path: Path) -> None:
    assert (
        error(tmp_path, "- a\n- b\n", name="q.yaml") == "config error in q.yaml: top level: expected table, got a list"
    )


@yaml_required
def test_yaml_non_string_keys(tmp_path: Path) -> None:
    assert error(tmp_path, "policy:\n  1: x\n", name="q.yaml") == (
        "config error in q.yaml: policy: keys must be strings, got 1"
    )


@yaml_required
def test_yaml_empty_table_is_an_empty_table(tmp_path: Path) -> None:
    cfg = load(tmp_path, "policy:\n  # name: strict\nproxies:\n", name="q.yaml")
    assert cfg.values == {"policy": {}, "proxies": {}}


@yaml_required
def test_yaml_null_scalar_is_a_type_error(tmp_path: Path) -> None:
    assert error(tmp_path, "source:\n", name="q.yaml") == "config error in q.yaml: source: expected string, got null"


def test_yaml_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` raise ImportError
    message = error(tmp_path, "category: x\n", name="q.yaml")
    assert message == 'config error in q.yaml: YAML config files need PyYAML: pip install "quarry-core[yaml]"'


# ---------------------------------------------------------------------------------------------------------------
# Schema and types
# ---------------------------------------------------------------------------------------------------------------

FULL_TOML = """\
quiet = true
source = "shop"
category = "daily"
executor = "playwright"
executor_python = "/usr/bin/python3"
resolve_from = "./lib"
timeout = "1m30s"
cancel_grace = 5
browser_ws_endpoint = "ws://localhost:9222"
no_browser_reuse = false

[policy]
name = "buffered"
flush_mode = "at_least_once"
buffer_events = 10
buffer_bytes = "10KB"
batch_events = 5
batch_bytes = 2048
flush_count = 3
flush_interval = "250ms"
max_flush_retries = 0
final_flush_timeout = 30

[storage]
backend = "s3"
path = "bucket/prefix"
dataset = "quarry"
codec = "jsonl"
compression = "zstd"
region = "eu-west-1"
endpoint = "http://minio:9000"
s3_path_style = true
options = { anon = false, client_kwargs = { verify = false } }

[proxy]
pool = "residential"
strategy = "round_robin"
max_rotations_per_run = 100
state_store = { type = "redis", path = "/tmp/x", url = "redis://r", key_prefix = "q:" }

[proxies.residential]
strategy = "sticky"
recency_window = 3
sticky = { scope = "domain", ttl_ms = 60000 }
endpoints = [
  { protocol = "http", host = "p1.example", port = 8080, username = "u", password = "pw" },
  { protocol = "socks5", host = "p2.example", port = 1080 },
]

[proxies."dc.eu-1"]
strategy = "random"
endpoints = []

[fanout]
depth = 2
max_runs = 50
parallel = 4
warm_executors = false
executor_recycle_after = 10

[adapter]
type = "webhook"
url = "https://hooks.example/x"
headers = { Authorization = "Bearer t", X-Env = "prod" }
timeout = "10s"
retries = 3
channel = "quarry:run_completed"
subject = "quarry.run_completed"
region = "eu-west-1"
endpoint = "http://localhost:4566"
outbox = true
notify_children = true
drain_on_run = true
max_age = "168h"
options = { jetstream = true }

[events]
lode_events = true

[[events.sinks]]
type = "lode"
delivery = "mandatory"

[[events.sinks]]
type = "redis"
delivery = "best_effort"
url = "redis://localhost:6379/0"
stream_key = "quarry:events"
max_len = -1
ttl = "24h"
timeout = "2s"
retries = 2
options = { ssl = false }

[log]
level = "debug"
format = "json"

[temporal]
address = "127.0.0.1:7233"
namespace = "default"
task_queue = "quarry"
max_concurrent_activities = 4
heartbeat_interval = "30s"
"""


def test_every_schema_key_is_accepted_and_typed(tmp_path: Path) -> None:
    cfg = load(tmp_path, FULL_TOML)
    assert cfg.get("timeout") == 90.0
    assert cfg.get("cancel_grace") == 5.0
    assert cfg.get("policy.buffer_bytes") == 10_000
    assert cfg.get("policy.batch_bytes") == 2048
    assert cfg.get("policy.flush_interval") == 0.25
    assert cfg.get("policy.final_flush_timeout") == 30.0
    assert cfg.get("storage.options") == {"anon": False, "client_kwargs": {"verify": False}}
    assert cfg.get("proxy.state_store.key_prefix") == "q:"
    assert cfg.get("proxies.residential.sticky.ttl_ms") == 60000
    assert cfg.get("proxies.residential.endpoints[1].protocol") == "socks5"
    assert cfg.get("proxies.'dc.eu-1'.endpoints") == []
    assert cfg.get("adapter.headers") == {"Authorization": "Bearer t", "X-Env": "prod"}
    assert cfg.get("adapter.max_age") == 7 * 24 * 3600.0
    assert cfg.get("events.sinks[1].max_len") == -1
    assert cfg.get("events.sinks[1].ttl") == 24 * 3600.0
    assert cfg.get("temporal.heartbeat_interval") == 30.0
    assert len(cfg.get("events.sinks")) == 2

    flat = cfg.flat()
    assert flat["policy.buffer_events"] == 10
    assert flat["events.sinks[1].url"] == "redis://localhost:6379/0"
    assert flat["proxies.'dc.eu-1'.strategy"] == "random"
    assert flat["adapter.headers"] == {"Authorization": "Bearer t", "X-Env": "prod"}
    assert flat["storage.options"] == {"anon": False, "client_kwargs": {"verify": False}}
    assert flat["proxies.residential.endpoints[0].password"] == "pw"


def test_schema_covers_the_keys_of_the_contract() -> None:
    """The table of cli.md §4 and the extras of §5 (a guard against silently dropping a key), plus
    ``error_snapshot`` (``--no-error-snapshot``, beyond the spec's table) and ``adapters`` (several adapters per
    run, issue 9)."""
    top = SCHEMA.fields
    assert set(top) == {
        "quiet", "source", "category", "executor", "executor_python", "resolve_from", "timeout", "cancel_grace",
        "browser_ws_endpoint", "no_browser_reuse", "policy", "storage", "proxy", "proxies", "fanout", "adapter",
        "adapters", "events", "log", "temporal", "error_snapshot",
    }  # fmt: skip
    for var in ENV_VARS:
        assert ConfigView(values={}).has(var.key) is False
        path = var.key.split(".")
        node: Any = SCHEMA
        for seg in path:
            assert isinstance(node, Table), var
            node = node.fields[seg]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[policy]\nflush_modes = 1\n", 'unknown key "policy.flush_modes" (did you mean "policy.flush_mode"?)'),
        ("sorce = 1\n", 'unknown key "sorce" (did you mean "source"?)'),
        ("zzz = 1\n", 'unknown key "zzz"'),
        ("buffer_events = 1\n", 'unknown key "buffer_events" (did you mean "policy.buffer_events"?)'),
        ("[[events.sinks]]\ntype = \"redis\"\n[[events.sinks]]\ndelivry = \"x\"\n",
         'unknown key "events.sinks[1].delivry" (did you mean "events.sinks[1].delivery"?)'),
        ("[proxies.res]\nstrategy = \"random\"\nendpoints = [{ host = \"h\", prot = 1 }]\n",
         'unknown key "proxies.res.endpoints[0].prot" (did you mean "proxies.res.endpoints[0].port"?)'),
        ("[proxy.state_store]\nkeyprefix = \"q\"\n",
         'unknown key "proxy.state_store.keyprefix" (did you mean "proxy.state_store.key_prefix"?)'),
        ('[proxies."a b"]\nstrat = 1\n',
         "unknown key \"proxies.'a b'.strat\" (did you mean \"proxies.'a b'.strategy\"?)"),
    ],
)  # fmt: skip
def test_unknown_keys(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, text) == f"config error in quarry.toml: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[policy]\nbuffer_events = "ten"\n', 'policy.buffer_events: expected integer, got "ten"'),
        ("[policy]\nbuffer_events = true\n", "policy.buffer_events: expected integer, got true"),
        ("[policy]\nbuffer_events = 1.5\n", "policy.buffer_events: expected integer, got 1.5"),
        ("[policy]\nbuffer_events = [1]\n", "policy.buffer_events: expected integer, got a list"),
        ("quiet = 1\n", "quiet: expected boolean, got 1"),
        ('quiet = "maybe"\n', 'quiet: expected boolean, got "maybe" (1/0/true/false/yes/no)'),
        ("source = 5\n", "source: expected string, got 5"),
        ("source = 1979-05-27\n", "source: expected string, got 1979-05-27"),
        ('timeout = "soon"\n',
         'timeout: expected duration, got "soon" (e.g. 500ms, 1.5s, 1m30s, 0 or a number of seconds)'),
        ("timeout = -1\n", "timeout: expected duration, got -1 (e.g. 500ms, 1.5s, 1m30s, 0 or a number of seconds)"),
        ("timeout = true\n", "timeout: expected duration, got true"),
        ('[policy]\nbuffer_bytes = "lots"\n',
         'policy.buffer_bytes: expected size, got "lots" (bytes, or a number with KB, MB, GB, KiB, MiB or GiB)'),
        ('policy = "strict"\n', 'policy: expected table, got "strict" (did you mean "policy.name"?)'),
        ('adapter = "webhook"\n', 'adapter: expected table, got "webhook" (did you mean "adapter.type"?)'),
        ('[events]\nsinks = "redis"\n', 'events.sinks: expected list of tables, got "redis"'),
        ('[events]\nsinks = ["redis"]\n', 'events.sinks[0]: expected table, got "redis"'),
        ('[[events.sinks]]\ntype = "lode"\n[[events.sinks]]\ndelivery = 5\n',
         "events.sinks[1].delivery: expected string, got 5"),
        ('[[events.sinks]]\ntype = "redis"\nmax_len = "many"\n',
         'events.sinks[0].max_len: expected integer, got "many"'),
        ('[[events.sinks]]\noptions = "x"\n', 'events.sinks[0].options: expected table, got "x"'),
        ('[proxies.res]\nendpoints = [{ host = "h", port = "http" }]\n',
         'proxies.res.endpoints[0].port: expected integer, got "http"'),
        ("proxies = 3\n", "proxies: expected table, got 3"),
        ('[adapter]\nheaders = "a=b"\n', 'adapter.headers: expected table, got "a=b"'),
    ],
)  # fmt: skip
def test_type_errors(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, text) == f"config error in quarry.toml: {message}"


def test_strings_in_typed_fields_are_coerced(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'quiet = "yes"\n[policy]\nbuffer_events = "100"\n[fanout]\ndepth = " -1 "\n')
    assert cfg.values == {"quiet": True, "policy": {"buffer_events": 100}, "fanout": {"depth": -1}}


def test_negative_ttl_is_allowed_only_for_sink_ttl(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[[events.sinks]]\nttl = "-1"\n[[events.sinks]]\nttl = -1\n[[events.sinks]]\nttl = "-2s"\n')
    assert [s["ttl"] for s in cfg.get("events.sinks")] == [-1.0, -1.0, -2.0]
    assert "expected duration" in error(tmp_path, '[[events.sinks]]\ntimeout = "-1s"\n')


def test_zero_values_are_present(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        'quiet = false\nsource = ""\ntimeout = 0\n[policy]\nbuffer_events = 0\n[events]\nlode_events = false\n',
    )
    assert cfg.has("quiet") and cfg.get("quiet", True) is False
    assert cfg.has("source") and cfg.get("source", "x") == ""
    assert cfg.has("timeout") and cfg.get("timeout", 9) == 0.0
    assert cfg.has("policy.buffer_events") and cfg.get("policy.buffer_events", 9) == 0
    assert cfg.has("events.lode_events") and cfg.get("events.lode_events", True) is False
    assert not cfg.has("category")
    assert cfg.get("category", "default") == "default"
    assert cfg.flat() == {
        "quiet": False,
        "source": "",
        "timeout": 0.0,
        "policy.buffer_events": 0,
        "events.lode_events": False,
    }


def test_get_and_has_on_lists(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[[events.sinks]]\ntype = "redis"\n')
    assert cfg.has("events.sinks[0].type")
    assert not cfg.has("events.sinks[1].type")
    assert not cfg.has("events.sinks[0].url")
    assert cfg.get("events.sinks[5]", "none") == "none"
    with pytest.raises(ValueError, match="invalid dotted key"):
        cfg.get("events..sinks")


# ---------------------------------------------------------------------------------------------------------------
# ${VAR} expansion
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("a-${A}-b", {"A": "x"}, "a-x-b"),
        ("${A}", {}, ""),
        ("${A}", {"A": ""}, ""),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": ""}, "dflt"),
        ("${A:-dflt}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-a b:c$d}", {}, "a b:c$d"),
        ("$A and $A_B", {"A": "x"}, "$A and $A_B"),
        ("${A}", {"A": "${B}", "B": "no"}, "${B}"),  # no re-expansion
        ("${A}${B}", {"A": "$", "B": "{C}", "C": "no"}, "${C}"),  # not even across neighbours
        ("$${A}", {"A": "x"}, "${A}"),  # escape
        ("${_a1}", {"_a1": "ok"}, "ok"),
        ("cost: $5 {not a ref}", {}, "cost: $5 {not a ref}"),
    ],
)
def test_expand_vars(text: str, env: dict[str, str], expected: str) -> None:
    assert expand_vars(text, env) == expected


@pytest.mark.parametrize("text", ["${1A}", "${A", "${A-x}", "${A:=x}", "${}", "${A:-${B}}", "${ A }"])
def test_expand_vars_rejects_malformed_references(text: str) -> None:
    with pytest.raises(ValueError, match="invalid variable reference"):
        expand_vars(text, {"A": "x", "B": "y"})


@given(st.text().filter(lambda s: "${" not in s))
def test_strings_without_references_survive_expansion(text: str) -> None:
    assert expand_vars(text, {"A": "x", "HOME": "/h"}) == text


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\") or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@given(st.text().filter(lambda s: "${" not in s))
def test_strings_without_references_survive_loading(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    directory = tmp_path_factory.mktemp("prop")
    cfg = load(directory, f"source = {_toml_string(text)}\n", env={"A": "x"})
    assert cfg.get("source") == text


def test_expansion_happens_after_parsing(tmp_path: Path) -> None:
    env = {"X": 'evil"\n[policy]\nname = "pwned', "Y": "}\nquiet: true"}
    cfg = load(tmp_path, 'source = "${X}"\ncategory = "${Y}"\n', env=env)
    assert cfg.values == {"source": env["X"], "category": env["Y"]}


@yaml_required
def test_yaml_expansion_cannot_inject_structure(tmp_path: Path) -> None:
    env = {"X": "a\npolicy:\n  name: pwned", "Y": "[1, 2]"}
    cfg = load(tmp_path, 'source: "${X}"\ncategory: ${Y}\n', name="q.yaml", env=env)
    assert cfg.values == {"source": env["X"], "category": "[1, 2]"}


def test_toml_comments_and_keys_are_not_expanded(tmp_path: Path) -> None:
    cfg = load(tmp_path, '# ${A}\n[proxies."${A}"]\nstrategy = "${A}"\n', env={"A": "x"})
    assert cfg.values == {"proxies": {"${A}": {"strategy": "x"}}}


def test_typed_fields_coerce_the_expanded_string(tmp_path: Path) -> None:
    text = (
        'quiet = "${Q}"\ntimeout = "${T}"\n[policy]\nbuffer_events = "${N}"\nbuffer_bytes = "${B:-1KiB}"\n'
        '[proxies.p]\nendpoints = [{ host = "${H}", port = "${P}" }]\n'
    )
    cfg = load(tmp_path, text, env={"Q": "yes", "T": "2", "N": "100", "H": "h.example", "P": "8080"})
    assert cfg.get("quiet") is True
    assert cfg.get("timeout") == 2.0
    assert cfg.get("policy.buffer_events") == 100
    assert cfg.get("policy.buffer_bytes") == 1024
    assert cfg.get("proxies.p.endpoints[0]") == {"host": "h.example", "port": 8080}


def test_non_numeric_expansion_is_a_type_error_naming_the_key(tmp_path: Path) -> None:
    message = error(tmp_path, '[policy]\nbuffer_events = "${N}"\n', env={"N": "lots"})
    assert message == (
        'config error in quarry.toml: policy.buffer_events: expected integer, got "lots" (expanded from "${N}")'
    )
    message = error(tmp_path, '[policy]\nbuffer_events = "${N}"\n', env={})
    assert (
        message == 'config error in quarry.toml: policy.buffer_events: expected integer, got "" (expanded from "${N}")'
    )


def test_malformed_reference_names_the_key(tmp_path: Path) -> None:
    message = error(tmp_path, '[storage]\npath = "${oops"\n')
    assert message == (
        "config error in quarry.toml: storage.path: invalid variable reference: expected ${NAME} or ${NAME:-default}"
        ' in "${oops"'
    )


def test_options_tables_are_expanded_and_kept(tmp_path: Path) -> None:
    text = '[storage.options]\nkey = "${K}"\nnested = { list = ["${K}", 1, true] }\n[adapter.options]\nx = 1\n'
    cfg = load(tmp_path, text, env={"K": "secret"})
    assert cfg.get("storage.options") == {"key": "secret", "nested": {"list": ["secret", 1, True]}}
    assert cfg.get("adapter.options") == {"x": 1}


def test_load_uses_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARRY_TEST_CONFIG_VAR", "from-os")
    write(tmp_path, "quarry.toml", 'source = "${QUARRY_TEST_CONFIG_VAR}"\n')
    assert load_config(explicit=None, cwd=tmp_path).get("source") == "from-os"


# ---------------------------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------------------------


def test_password_values_are_redacted(tmp_path: Path) -> None:
    message = error(tmp_path, '[proxies.res]\nendpoints = [{ host = "h", password = 123456789 }]\n')
    assert message == "config error in quarry.toml: proxies.res.endpoints[0].password: expected string, got <redacted>"
    assert "123456789" not in message


def test_password_malformed_reference_is_redacted(tmp_path: Path) -> None:
    message = error(tmp_path, '[proxies.res]\nendpoints = [{ host = "h", password = "hunter2${" }]\n')
    assert "hunter2" not in message
    assert message.endswith("in <redacted>")


def test_header_values_are_redacted(tmp_path: Path) -> None:
    message = error(tmp_path, "[adapter.headers]\nX-Token = 987654321\n")
    assert message == "config error in quarry.toml: adapter.headers.X-Token: expected string, got <redacted>"
    message = error(tmp_path, '[adapter.headers]\nAuthorization = "Bearer sekrit${"\n')
    assert "sekrit" not in message


def test_redacted_env_header(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        env_value("QUARRY_ADAPTER_HEADER", Kind.STRING_MAP, {"QUARRY_ADAPTER_HEADER": "A=1,=sekrit"}, secret=True)
    assert str(info.value) == "QUARRY_ADAPTER_HEADER: expected comma-separated KEY=VALUE pairs, got <redacted>"


# ---------------------------------------------------------------------------------------------------------------
# Environment layer
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (Kind.STRING, "x", "x"),
        (Kind.INTEGER, "42", 42),
        (Kind.INTEGER, "-1", -1),
        (Kind.BOOLEAN, "yes", True),
        (Kind.BOOLEAN, "0", False),
        (Kind.DURATION, "1m30s", 90.0),
        (Kind.DURATION, "0", 0.0),
        (Kind.SIZE, "1KB", 1000),
        (Kind.LIST, "redis, lode,,", ["redis", "lode"]),
        (Kind.STRING_MAP, "a=1,b=x=y", {"a": "1", "b": "x=y"}),
    ],
)
def test_env_value(kind: Kind, text: str, expected: Any) -> None:
    assert env_value("QUARRY_X", kind, {"QUARRY_X": text}) == expected


def test_env_value_unset_or_empty_is_none() -> None:
    assert env_value("QUARRY_X", Kind.INTEGER, {}) is None
    assert env_value("QUARRY_X", Kind.INTEGER, {"QUARRY_X": ""}) is None


@pytest.mark.parametrize(
    ("name", "kind", "text", "message"),
    [
        ("QUARRY_BUFFER_EVENTS", Kind.INTEGER, "x", 'QUARRY_BUFFER_EVENTS: expected integer, got "x"'),
        ("QUARRY_QUIET", Kind.BOOLEAN, "maybe", 'QUARRY_QUIET: expected boolean, got "maybe" (1/0/true/false/yes/no)'),
        ("QUARRY_TIMEOUT", Kind.DURATION, "30",
         'QUARRY_TIMEOUT: expected duration, got "30" (add a unit: ns, us, ms, s, m, h)'),
        ("QUARRY_TIMEOUT", Kind.DURATION, "soon",
         'QUARRY_TIMEOUT: expected duration, got "soon" (e.g. 500ms, 1.5s, 1m30s, 0)'),
        ("QUARRY_BUFFER_BYTES", Kind.SIZE, "big",
         'QUARRY_BUFFER_BYTES: expected size, got "big" (bytes, or a number with KB, MB, GB, KiB, MiB or GiB)'),
        ("QUARRY_STORAGE_OPTION", Kind.STRING_MAP, "noequals",
         'QUARRY_STORAGE_OPTION: expected comma-separated KEY=VALUE pairs, got "noequals"'),
    ],
)  # fmt: skip
def test_env_value_errors(name: str, kind: Kind, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        env_value(name, kind, {name: text})
    assert str(info.value) == message


def test_env_layer() -> None:
    env = {
        "QUARRY_BUFFER_EVENTS": "7",
        "QUARRY_POLICY": "buffered",
        "QUARRY_NO_LODE_EVENTS": "1",
        "QUARRY_BROWSER_ENDPOINT": "ws://second",
        "QUARRY_ADAPTER_HEADER": "A=1,B=2",
        "QUARRY_PROXY_STATE_STORE": "memory",
        "QUARRY_TIMEOUT": "",
        "UNRELATED": "x",
    }
    assert env_layer(env) == {
        "policy": {"buffer_events": 7, "name": "buffered"},
        "events": {"lode_events": False},
        "browser_ws_endpoint": "ws://second",
        "adapter": {"headers": {"A": "1", "B": "2"}},
        "proxy": {"state_store": {"type": "memory"}},
    }
    both = {"QUARRY_BROWSER_WS_ENDPOINT": "ws://first", "QUARRY_BROWSER_ENDPOINT": "ws://second"}
    assert env_layer(both) == {"browser_ws_endpoint": "ws://first"}


def test_env_layer_error_format() -> None:
    with pytest.raises(ConfigError, match=r'^QUARRY_BUFFER_EVENTS: expected integer, got "x"$'):
        env_layer({"QUARRY_BUFFER_EVENTS": "x"})


def test_env_var_names_follow_the_option_names() -> None:
    names = [v.name for v in ENV_VARS]
    assert len(names) == len(set(names))
    assert all(n.startswith("QUARRY_") and n == n.upper() for n in names)


# ---------------------------------------------------------------------------------------------------------------
# Precedence
# ---------------------------------------------------------------------------------------------------------------


def test_precedence_cli_env_config_default(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[policy]\nname = "buffered"\nbuffer_events = 10\nflush_mode = "at_most_once"\n')
    defaults = {"policy": {"name": "strict", "buffer_events": 0, "flush_mode": "at_least_once", "max_flush_retries": 3}}
    env = env_layer({"QUARRY_BUFFER_EVENTS": "20", "QUARRY_FLUSH_MODE": "at_least_once"})
    cli = {"policy.buffer_events": 30}
    merged = merge_layers(defaults, cfg, env, cli)
    assert merged.get("policy") == {
        "name": "buffered",  # config over default
        "buffer_events": 30,  # cli over env
        "flush_mode": "at_least_once",  # env over config
        "max_flush_retries": 3,  # default
    }


def test_none_means_not_given() -> None:
    merged = merge_layers({"category": "default"}, {"category": "cfg"}, {}, {"category": None, "source": None})
    assert merged.values == {"category": "cfg"}


def test_zero_values_override_lower_layers() -> None:
    merged = merge_layers(
        {"quiet": True, "policy": {"buffer_events": 5}}, {"quiet": False}, None, {"policy.buffer_events": 0}
    )
    assert merged.values == {"quiet": False, "policy": {"buffer_events": 0}}


def test_lists_replace() -> None:
    config = {"events": {"sinks": [{"type": "redis", "url": "redis://a"}], "lode_events": True}}
    cli = {"events": {"sinks": [{"type": "lode", "delivery": "best_effort"}]}}
    merged = merge_layers(None, config, None, cli)
    assert merged.get("events") == {"sinks": [{"type": "lode", "delivery": "best_effort"}], "lode_events": True}


def test_headers_and_storage_options_merge_per_key() -> None:
    config = {
        "adapter": {"type": "webhook", "headers": {"A": "cfg", "B": "cfg"}},
        "storage": {"options": {"x": "1", "y": {"deep": 1}}},
    }
    env = {"adapter": {"headers": {"B": "env", "C": "env"}}}
    cli = {"adapter.headers": {"C": "cli"}, "storage.options": {"y": {"other": 2}}}
    merged = merge_layers(None, config, env, cli)
    assert merged.get("adapter.headers") == {"A": "cfg", "B": "env", "C": "cli"}
    assert merged.get("adapter.type") == "webhook"
    assert merged.get("storage.options") == {"x": "1", "y": {"other": 2}}  # one level: the value is replaced


def test_config_only_sections_stay_active(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[adapter]\ntype = "webhook"\nurl = "https://x"\n[[events.sinks]]\ntype = "redis"\n')
    merged = merge_layers({"category": "default"}, cfg, env_layer({}), {"source": "s"})
    assert merged.get("adapter.type") == "webhook"
    assert merged.get("events.sinks") == [{"type": "redis"}]
    assert merged.flat() == {
        "category": "default",
        "adapter.type": "webhook",
        "adapter.url": "https://x",
        "events.sinks[0].type": "redis",
        "source": "s",
    }


def test_merge_does_not_modify_inputs() -> None:
    config = {"adapter": {"headers": {"A": "1"}}, "events": {"sinks": [{"type": "redis"}]}}
    cli = {"adapter": {"headers": {"B": "2"}}}
    merged = merge_layers(None, config, None, cli)
    merged.values["adapter"]["headers"]["Z"] = "z"
    merged.values["events"]["sinks"][0]["type"] = "changed"
    assert config == {"adapter": {"headers": {"A": "1"}}, "events": {"sinks": [{"type": "redis"}]}}
    assert cli == {"adapter": {"headers": {"B": "2"}}}


def test_merge_rejects_list_indexes_in_layer_keys() -> None:
    with pytest.raises(ValueError, match="cannot index lists"):
        merge_layers(None, None, None, {"events.sinks[0].type": "redis"})


def test_config_file_is_a_config_view(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'source = "s"\n')
    assert isinstance(cfg, ConfigView)
    assert os.fspath(cfg.path or "") == os.fspath(tmp_path / "quarry.toml")
