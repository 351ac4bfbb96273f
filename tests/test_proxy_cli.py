"""``quarry debug resolve proxy`` and ``quarry inspect proxy`` (CONTRACT_PROXY §10) against the real file state
store: a peek changes nothing, ``--commit`` advances exactly like a run start, ``inspect`` shows the store's state
and never a password."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quarry_core.cli import main

PASSWORD = "s3cr3t-Zq9"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a discovered quarry.toml: pools ``rr`` (three endpoints) and ``st`` (sticky)."""
    (tmp_path / "quarry.toml").write_text(
        "[proxies.rr]\n"
        'strategy = "round_robin"\n'
        "endpoints = [\n"
        '  { protocol = "http", host = "p0.example", port = 8080, username = "u", password = "${PX_PW}" },\n'
        '  { protocol = "http", host = "p1.example", port = 8080, username = "u", password = "${PX_PW}" },\n'
        '  { protocol = "http", host = "p2.example", port = 8080 },\n'
        "]\n"
        "[proxies.st]\n"
        'strategy = "sticky"\n'
        'sticky = { scope = "domain", ttl_ms = 60000 }\n'
        'endpoints = [{ protocol = "http", host = "s0.example", port = 1 }, '
        '{ protocol = "http", host = "s1.example", port = 2 }]\n'
        "[proxy]\n"
        'state_store = { type = "file", path = "state" }\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PX_PW", PASSWORD)
    monkeypatch.delenv("QUARRY_CONFIG", raising=False)
    return tmp_path


def _quarry(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main([*args, "-f", "json"])
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    return code, (json.loads(out) if out.strip() else None), err


def test_peek_changes_nothing_and_commit_advances_round_robin(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        code, peek, _ = _quarry(capsys, "debug", "resolve", "proxy", "rr")
        assert code == 0
        assert peek == {
            "endpoint": {"protocol": "http", "host": "p0.example", "port": 8080, "username": "u"},
            "index": 0,
            "strategy": "round_robin",
            "committed": False,
        }
    hosts = []
    for _ in range(4):
        code, sel, _ = _quarry(capsys, "debug", "resolve", "proxy", "rr", "--commit")
        assert code == 0 and sel["committed"] is True
        hosts.append(sel["endpoint"]["host"])
    assert hosts == ["p0.example", "p1.example", "p2.example", "p0.example"]
    code, shown, _ = _quarry(capsys, "inspect", "proxy", "rr")
    assert code == 0
    assert shown["endpoints"][0] == {
        "protocol": "http",
        "host": "p0.example",
        "port": 8080,
        "username": "u",
        "password_set": True,
    }
    assert shown["endpoints"][2]["password_set"] is False
    assert shown["state_store"] == "file"
    runtime = shown["runtime"]
    assert runtime["round_robin_index"] == 1 and runtime["selections"] == 4 and runtime["rotations"] == 0
    assert runtime["last_used_at"].endswith("Z")
    code, stats, _ = _quarry(capsys, "stats", "proxies")
    assert code == 0
    assert [(r["pool"], r["requests"], r["failures"]) for r in stats] == [("rr", 4, 0), ("st", 0, 0)]
    assert stats[0]["last_used_at"] == runtime["last_used_at"] and stats[1]["last_used_at"] is None
    stored = (project / "state" / "rr.json").read_bytes()
    assert json.loads(stored)["rr_index"] == 1 and PASSWORD.encode() not in stored


def test_sticky_resolution_by_domain_and_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, first, _ = _quarry(
        capsys, "debug", "resolve", "proxy", "st", "--commit", "--domain", "https://Shop.Example/p?x=1"
    )
    assert code == 0 and first["sticky_key"] == "domain:shop.example"
    for _ in range(3):
        _, again, _ = _quarry(capsys, "debug", "resolve", "proxy", "st", "--commit", "--domain", "shop.example")
        assert again["index"] == first["index"]
    code, _, err = _quarry(capsys, "debug", "resolve", "proxy", "st")
    assert code == 1 and "sticky selection requires a sticky key" in err
    code, keyed, _ = _quarry(capsys, "debug", "resolve", "proxy", "rr", "--strategy", "sticky", "--sticky-key", "k")
    assert code == 0 and keyed["sticky_key"] == "key:k" and keyed["committed"] is False
    _, shown, _ = _quarry(capsys, "inspect", "proxy", "st")
    assert shown["sticky"] == {"scope": "domain", "ttl_ms": 60000} and shown["runtime"]["sticky_entries"] == 1


def test_read_side_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _quarry(capsys, "inspect", "proxy", "nope")
    assert code == 1 and 'unknown proxy pool "nope" (defined: rr, st)' in err
    code, _, err = _quarry(capsys, "debug", "resolve", "proxy", "rr", "--strategy", "fastest")
    assert code == 4 and 'invalid --strategy "fastest"' in err
    code, _, err = _quarry(capsys, "inspect", "proxy", "rr", "--proxy-state-store", "etcd")
    assert code == 4 and 'invalid --proxy-state-store "etcd"' in err
    code, _, err = _quarry(
        capsys, "inspect", "proxy", "rr", "--proxy-state-store", "redis", "--proxy-state-url", "redis://127.0.0.1:1"
    )
    assert code == 1 and "redis state store redis://127.0.0.1:1 unavailable" in err
    (project / "quarry.toml").write_text(
        '[proxies.rr]\nendpoints = [{ protocol = "http", host = "http://p0.example", port = 8080 }]\n'
    )
    code, _, err = _quarry(capsys, "inspect", "proxy", "rr")
    assert code == 4 and "proxies.rr.endpoints[0]: host must be a bare host name" in err
