"""Adapter and event-sink settings resolved from the configuration and the plugins' own option schemas, and the
outbox's state rules, in-process with the real plugin host (first-party plugins installed in the workspace)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quarry_core.cli.adapter_options import adapter_settings, coerce_options, event_sink_settings
from quarry_core.config import env_layer, load_config, merge_layers
from quarry_core.errors import ConfigError
from quarry_core.plugins import PluginHost
from quarry_core.registrations import PluginOption
from quarry_core.runtime.outbox import latest_entries
from quarry_core.testing.fakes import capture_logs


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.build()


def _view(
    cli: dict[str, Any] | None = None, toml: str = "", env: dict[str, str] | None = None, tmp: Path | None = None
):
    config = None
    if toml:
        assert tmp is not None
        path = tmp / "quarry.toml"
        path.write_text(toml)
        config = load_config(explicit=str(path), environ={})
    return merge_layers(None, config, env_layer(env or {}), cli or {})


def test_coerce_options_by_declared_kind() -> None:
    declared = (
        PluginOption("name"),
        PluginOption("n", kind="integer"),
        PluginOption("x", kind="number"),
        PluginOption("on", kind="boolean"),
        PluginOption("wait", kind="duration"),
    )
    given = {"name": 7, "n": "-3", "x": "1.5", "on": "yes", "wait": "1m30s"}
    assert coerce_options(declared, given, what="t", prefix="p") == {
        "name": "7", "n": -3, "x": 1.5, "on": True, "wait": 90.0,
    }  # fmt: skip
    assert coerce_options(declared, {"wait": "-1", "n": 4}, what="t", prefix="p") == {"wait": -1.0, "n": 4}
    with pytest.raises(ConfigError, match=r'^p: t: unknown option "colour" \(known: n, name, on, wait, x\)$'):
        coerce_options(declared, {"colour": "blue"}, what="t", prefix="p")
    with pytest.raises(ConfigError, match=r"^p: t option n: expected an integer"):
        coerce_options(declared, {"n": "many"}, what="t", prefix="p")
    with pytest.raises(ConfigError, match="p: t option on"):
        coerce_options(declared, {"on": "perhaps"}, what="t", prefix="p")
    # a plugin that declares nothing gets what was given
    assert coerce_options((), {"anything": "1"}, what="t", prefix="p") == {"anything": "1"}


def test_adapter_precedence_cli_env_config(host: PluginHost, tmp_path: Path) -> None:
    toml = '[adapter]\ntype = "nats"\nurl = "nats://a:4222"\nsubject = "from.config"\ntimeout = 4\n'
    toml += "[adapter.options]\njetstream = true\n"
    view = _view(
        cli={"adapter.subject": "from.cli"},
        env={"QUARRY_ADAPTER_URL": "nats://b:4222", "QUARRY_ADAPTER_RETRIES": "1"},
        toml=toml,
        tmp=tmp_path,
    )
    settings = adapter_settings(view, host)
    assert settings is not None
    a = settings.adapter
    assert (a.type, a.url, a.timeout, a.retries) == ("nats", "nats://b:4222", 4.0, 1)
    assert dict(a.options) == {"subject": "from.cli", "jetstream": True}
    assert settings.outbox is False and settings.max_age == 7 * 86400


def test_adapter_option_from_the_environment_is_typed(host: PluginHost) -> None:
    view = _view(
        env={"QUARRY_ADAPTER": "nats", "QUARRY_ADAPTER_URL": "nats://h:1", "QUARRY_ADAPTER_OPTION": "jetstream=1"}
    )
    settings = adapter_settings(view, host)
    assert settings is not None and settings.adapter.options == {"jetstream": True}


def test_flags_an_adapter_ignores_warn(host: PluginHost) -> None:
    view = _view(
        cli={
            "adapter.type": "redis",
            "adapter.url": "redis://h:1",
            "adapter.headers": {"Authorization": "Bearer t0ps3cret"},
            "adapter.subject": "x.y",
        }
    )
    with capture_logs("quarry_core") as logs:
        settings = adapter_settings(view, host)
    assert settings is not None
    assert settings.adapter.headers == {} and settings.adapter.options == {}
    text = "\n".join(logs.messages)
    assert "--adapter-header is ignored for the redis adapter" in text
    assert "--adapter-subject is ignored for the redis adapter" in text
    assert "t0ps3cret" not in text


def test_no_adapter_means_no_notification_and_orphan_settings_are_errors(host: PluginHost) -> None:
    assert adapter_settings(_view(), host) is None
    assert adapter_settings(_view(cli={"adapter.outbox": False}), host) is None
    with pytest.raises(ConfigError, match=r"adapter\.outbox is set but no adapter is selected"):
        adapter_settings(_view(cli={"adapter.outbox": True}), host)


def test_event_sinks_from_the_config_file(host: PluginHost, tmp_path: Path) -> None:
    toml = (
        '[[events.sinks]]\ntype = "lode"\ndelivery = "mandatory"\n'
        '[[events.sinks]]\ntype = "redis"\nurl = "redis://h:1"\nstream_key = "s"\nmax_len = -1\nttl = "2h"\n'
        'delivery = "best_effort"\n'
    )
    result = event_sink_settings(_view(toml=toml, tmp=tmp_path), {}, host, environ={})
    (sink,) = result.sinks
    assert (sink.type, sink.url, sink.delivery) == ("redis", "redis://h:1", "best_effort")
    assert dict(sink.options) == {"stream_key": "s", "max_len": -1, "ttl": 7200.0}
    assert result.lode_events is True and result.lode_delivery == "mandatory"
    # a command-line list replaces the file's list; per-sink flags fill in the named sink
    cli = event_sink_settings(
        _view(toml=toml, tmp=tmp_path),
        {"event_sink": ["redis"], "event_sink_redis_url": "redis://other:2", "event_sink_option": ["redis.retries=5"]},
        host,
        environ={},
    )
    (only,) = cli.sinks
    assert only.url == "redis://other:2" and dict(only.options) == {"retries": 5} and only.delivery == "mandatory"


def test_event_sinks_from_the_environment(host: PluginHost) -> None:
    env = {"QUARRY_EVENT_SINK": "redis,lode", "QUARRY_EVENT_SINK_REDIS_URL": "redis://h:1",
           "QUARRY_EVENT_SINK_LODE_DELIVERY": "best_effort"}  # fmt: skip
    with capture_logs("quarry_core") as logs:
        result = event_sink_settings(_view(), {}, host, environ=env)
    assert [s.type for s in result.sinks] == ["redis"] and result.lode_delivery == "best_effort"
    assert any("best_effort" in m for m in logs.messages)


def test_no_lode_events_needs_a_mandatory_sink(host: PluginHost) -> None:
    view = _view(cli={"events.lode_events": False})
    with pytest.raises(ConfigError, match=r"^--no-lode-events requires at least one mandatory event sink$"):
        event_sink_settings(view, {"event_sink": ["redis"], "event_sink_redis_url": "redis://h:1",
                                   "event_sink_redis_delivery": "best_effort"}, host, environ={})  # fmt: skip
    ok = event_sink_settings(view, {"event_sink": ["redis"], "event_sink_redis_url": "redis://h:1"}, host, environ={})
    assert ok.lode_events is False


def _row(nid: str, state: str, at: datetime, attempts: int = 0, run_id: str = "r1") -> dict[str, Any]:
    return {
        "notification_id": nid, "state": state, "adapter": "webhook", "target": "http://h/x", "payload": "{}",
        "attempts": attempts, "created_at": at, "recorded_at": at,
        "source": "s", "category": "c", "day": "2026-11-27", "run_id": run_id,
    }  # fmt: skip


def test_outbox_newest_record_wins_and_ties_go_to_the_later_row() -> None:
    t0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    rows = [
        _row("b", "pending", t0 + timedelta(seconds=5)),
        _row("a", "pending", t0),
        _row("a", "pending", t0 + timedelta(seconds=1), attempts=4),
        _row("a", "delivered", t0 + timedelta(seconds=1), attempts=5),  # same millisecond: commit order decides
        _row("b", "pending", t0 + timedelta(seconds=9), attempts=2),
    ]
    latest = latest_entries(rows)
    assert [(s.entry.notification_id, s.entry.state, s.entry.attempts) for s in latest] == [
        ("a", "delivered", 5),
        ("b", "pending", 2),
    ]
    assert latest[1].partition.run_id == "r1"


# --------------------------------------------------------------------------- several adapters per run (issue 9)


def test_one_adapter_from_adapters_list_takes_the_flat_settings_on_top(host: PluginHost, tmp_path: Path) -> None:
    toml = (
        '[[adapters]]\nname = "hook"\ntype = "webhook"\nurl = "http://config/x"\nretries = 5\n'
        '[adapters.headers]\nA = "entry"\nB = "entry"\n'
    )
    view = _view(cli={"adapter.type": ["hook"], "adapter.url": "http://cli/x", "adapter.headers": {"B": "cli"}},
                 toml=toml, tmp=tmp_path)  # fmt: skip
    settings = adapter_settings(view, host)
    assert settings is not None
    ((name, a),) = settings.adapters.items()
    assert name == "hook" and (a.type, a.url, a.retries) == ("webhook", "http://cli/x", 5)
    assert dict(a.headers) == {"A": "entry", "B": "cli"}  # exactly one adapter: the flat flags apply to it


def test_several_adapters_shared_defaults_and_addressed_options(host: PluginHost, tmp_path: Path) -> None:
    toml = '[[adapters]]\ntype = "nats"\nurl = "nats://h:1"\ntimeout = 7\n'
    view = _view(
        cli={"adapter.options": {"redis.url": "redis://h:1", "redis.retries": "0", "nats.jetstream": "yes",
                                 "redis.channel": "c", "redis.timeout": "2s"}},
        env={"QUARRY_ADAPTER": "redis,nats", "QUARRY_ADAPTER_TIMEOUT": "4s", "QUARRY_ADAPTER_RETRIES": "2"},
        toml=toml,
        tmp=tmp_path,
    )  # fmt: skip
    settings = adapter_settings(view, host)
    assert settings is not None
    assert list(settings.adapters) == ["redis", "nats"]  # the selection's order
    redis, nats = settings.adapters["redis"], settings.adapters["nats"]
    assert (redis.url, redis.timeout, redis.retries, dict(redis.options)) == ("redis://h:1", 2.0, 0, {"channel": "c"})
    # the entry's own timeout wins over the shared default; the shared retries fill in
    assert (nats.timeout, nats.retries, dict(nats.options)) == (7.0, 2, {"jetstream": True})
    assert settings.adapter == redis  # the first adapter, for single-adapter callers


def test_without_a_selection_every_adapters_entry_is_used(host: PluginHost, tmp_path: Path) -> None:
    toml = (
        "[adapter]\noutbox = true\n"
        '[[adapters]]\nname = "a"\ntype = "webhook"\nurl = "http://a/x"\n'
        '[[adapters]]\nname = "b"\ntype = "webhook"\nurl = "http://b/x"\n'
    )
    settings = adapter_settings(_view(toml=toml, tmp=tmp_path), host)
    assert settings is not None and settings.outbox is True
    assert {n: c.url for n, c in settings.adapters.items()} == {"a": "http://a/x", "b": "http://b/x"}
    with pytest.raises(ConfigError, match=r'unknown adapter "c".*configured \[\[adapters\]\] names: a, b'):
        adapter_settings(_view(cli={"adapter.type": ["c"]}, toml=toml, tmp=tmp_path), host)


def test_outbox_state_is_kept_per_adapter() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def row(adapter: str, state: str, at: int) -> dict[str, Any]:
        ts = t0 + timedelta(seconds=at)
        return {"notification_id": "n1", "state": state, "adapter": adapter, "target": "", "payload": "{}",
                "attempts": at, "created_at": t0, "recorded_at": ts, "source": "s", "category": "c",
                "day": "2026-01-01", "run_id": "r"}  # fmt: skip

    rows = [row("webhook", "pending", 0), row("redis", "pending", 0), row("redis", "delivered", 1),
            row("webhook", "pending", 2)]  # fmt: skip
    latest = {s.entry.adapter: s.entry.state for s in latest_entries(rows)}
    assert latest == {"webhook": "pending", "redis": "delivered"}
