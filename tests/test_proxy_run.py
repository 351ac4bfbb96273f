"""Proxy pools end to end (CONTRACT_PROXY): ``quarry run`` subprocesses, real Chromium, real authenticated forward
proxies on 127.0.0.1 (``proxy_helpers``), the real file state store under ``$XDG_STATE_HOME``, real Lode files.

Pages are addressed as ``http://shop.quarry.test:<port>/``: Chromium would send 127.0.0.1 direct, bypassing the
proxy, and only the test proxy resolves ``*.quarry.test`` (to 127.0.0.1), so a page that loads at all went through
the endpoint whose access log names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import SCRIPTS, read_table, run_id_from
from proxy_helpers import ForwardProxies, forward_proxies

PASSWORD = "s3cr3t-Zq9"

PAGE_SCRIPT = """
async def run(ctx):
    await ctx.page.goto(ctx.job["url"])
    await ctx.emit.item(item_type="page", data={"title": await ctx.page.title(), "port": ctx.proxy.port})
"""

ROTATE_SCRIPT = """
async def run(ctx):
    await ctx.page.goto(ctx.job["url"] + "?leg=1")
    old_page, before = ctx.page, ctx.proxy.port
    await ctx.page.context.add_cookies([{"name": "c", "value": "1", "url": ctx.job["url"]}])
    rot = await ctx.emit.rotate_proxy(reason="blocked")
    await ctx.page.goto(ctx.job["url"] + "?leg=2")
    again = await ctx.emit.rotate_proxy(reason="again")
    await ctx.emit.item(item_type="rotation", data={
        "before": before,
        "rotated": rot.rotated,
        "after": rot.proxy.port,
        "ctx_proxy": ctx.proxy.port,
        "fresh_page": ctx.page is not old_page and old_page.is_closed(),
        "cookies_after": len(await ctx.page.context.cookies()),
        "again_rotated": again.rotated,
        "again_error": again.error,
    })
"""


def _config(path: Path, proxies: ForwardProxies, names: list[str], *, strategy: str = "round_robin") -> Path:
    """A quarry.toml with pool ``shop`` over ``names``; passwords come from ``${QUARRY_TEST_PROXY_PW}``."""
    lines = [f'[proxies.shop]\nstrategy = "{strategy}"\nendpoints = [']
    for name in names:
        port = proxies.ports[name]
        lines.append(
            f'  {{ protocol = "http", host = "127.0.0.1", port = {port}, username = "{proxies.username}", '
            'password = "${QUARRY_TEST_PROXY_PW}" },'
        )
    lines.append(']\n[proxy]\npool = "shop"\n')
    path.write_text("\n".join(lines))
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    return {"QUARRY_TEST_PROXY_PW": PASSWORD, "XDG_STATE_HOME": str(tmp_path / "xdg-state")}


def _final_run(storage: Path, run_id: str) -> dict[str, Any]:
    rows = read_table(storage, "runs", run_id=run_id)
    return max(rows, key=lambda r: r["updated_at"])


def _assert_password_nowhere(texts: list[str], roots: list[Path]) -> int:
    """The password's bytes are in none of ``texts`` and in no file under ``roots``; returns the files checked."""
    needle = PASSWORD.encode()
    for text in texts:
        assert PASSWORD not in text
    checked = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                checked += 1
                assert needle not in path.read_bytes(), f"password found in {path}"
    return checked


@pytest.mark.browser
def test_three_consecutive_runs_use_three_endpoints_and_no_password_is_stored(
    quarry: Any, site_url: str, storage: Path, tmp_path: Path
) -> None:
    script = tmp_path / "page.py"
    script.write_text(PAGE_SCRIPT)
    site_port = site_url.rsplit(":", 1)[1]
    url = f"http://shop.quarry.test:{site_port}/index.html"
    outputs: list[str] = []
    with forward_proxies(["a", "b", "c"], PASSWORD) as proxies:
        config = _config(tmp_path / "quarry.toml", proxies, ["a", "b", "c"])
        run_ids = []
        for i in range(3):
            report = tmp_path / f"report-{i}.json"
            res = quarry(script, "--config", str(config), "--report", str(report), job={"url": url}, env=_env(tmp_path))
            assert res.code == 0, res.stderr
            outputs += [res.stdout, res.stderr, report.read_text()]
            run_ids.append(run_id_from(res.stdout))
        served = [a.endpoint for a in proxies.served("/index.html")]
        assert all(a.user == proxies.username for a in proxies.served())
    # the proxies' own access logs: run 1, 2, 3 went through a, b, c (state persisted between processes)
    assert served == ["a", "b", "c"]
    used = []
    for run_id, name in zip(run_ids, "abc", strict=True):
        rec = _final_run(storage, run_id)
        assert rec["proxy_pool"] == "shop" and rec["proxy_rotations"] == 0
        assert rec["proxy_used"] == {
            "protocol": "http",
            "host": "127.0.0.1",
            "port": proxies.ports[name],
            "username": "quarry",
        }
        assert rec["proxy_endpoints"] == [rec["proxy_used"]]
        used.append(rec["proxy_used"]["port"])
    assert len(set(used)) == 3
    items = [json.loads(r["payload"]) for r in read_table(storage, "events", event_type="item")]
    assert sorted(i["data"]["port"] for i in items) == sorted(used)
    assert {i["data"]["title"] for i in items} == {"Quarry Stone Shop"}
    # the default file store under $XDG_STATE_HOME/quarry/proxy advanced once per run
    state_dir = tmp_path / "xdg-state" / "quarry" / "proxy"
    state = json.loads((state_dir / "shop.json").read_text())
    assert state["rr_index"] == 0 and state["selections"] == 3
    assert (state_dir.stat().st_mode & 0o777) == 0o700
    report = json.loads((tmp_path / "report-2.json").read_text())
    assert report["proxy_used"]["port"] == proxies.ports["c"] and report["proxy_rotations"] == 0
    checked = _assert_password_nowhere(outputs, [storage, tmp_path / "xdg-state"])
    assert checked > 10


@pytest.mark.browser
def test_rotate_proxy_switches_endpoint_in_a_fresh_context(
    quarry: Any, site_url: str, storage: Path, tmp_path: Path
) -> None:
    script = tmp_path / "rotate.py"
    script.write_text(ROTATE_SCRIPT)
    site_port = site_url.rsplit(":", 1)[1]
    url = f"http://shop.quarry.test:{site_port}/index.html"
    with forward_proxies(["a", "b"], PASSWORD) as proxies:
        config = _config(tmp_path / "quarry.toml", proxies, ["a", "b"])
        report = tmp_path / "report.json"
        res = quarry(
            script,
            "--config",
            str(config),
            "--proxy-max-rotations",
            "1",
            "--log-level",
            "debug",
            "--report",
            str(report),
            job={"url": url},
            env=_env(tmp_path),
        )
        assert res.code == 0, res.stderr
        legs = {a.url.rsplit("?", 1)[1]: a.endpoint for a in proxies.served("?leg=")}
    # leg 1 through the selected endpoint, leg 2 (after rotate_proxy) through the other one
    assert legs == {"leg=1": "a", "leg=2": "b"}
    run_id = run_id_from(res.stdout)
    [item] = [json.loads(r["payload"])["data"] for r in read_table(storage, "events", event_type="item")]
    assert item == {
        "before": proxies.ports["a"],
        "rotated": True,
        "after": proxies.ports["b"],
        "ctx_proxy": proxies.ports["b"],
        "fresh_page": True,
        "cookies_after": 0,
        "again_rotated": False,
        "again_error": "rotation limit reached",
    }
    rec = _final_run(storage, run_id)
    assert rec["proxy_rotations"] == 1
    assert [e["port"] for e in rec["proxy_endpoints"]] == [proxies.ports["a"], proxies.ports["b"]]
    assert rec["proxy_used"]["port"] == proxies.ports["b"]
    assert json.loads(report.read_text())["proxy_rotations"] == 1
    assert "=== Proxy ===" in res.stdout and "Rotations: 1" in res.stdout
    assert f"Port: {proxies.ports['b']}" in res.stdout
    assert "rotation limit reached" in res.stderr
    state = json.loads((tmp_path / "xdg-state" / "quarry" / "proxy" / "shop.json").read_text())
    assert state["rotations"] == 1 and state["selections"] == 1
    _assert_password_nowhere([res.stdout, res.stderr, report.read_text()], [storage, tmp_path / "xdg-state"])


# --------------------------------------------------------------------------- validation: exit 4, nothing run


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _run_in_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, storage: Path, *args: str
) -> tuple[int, str]:
    """``quarry run`` in this process (validation fails before any executor starts); returns (code, stderr)."""
    from quarry_core.cli import main

    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(SCRIPTS / "ok.py"), "--storage-path", str(storage), *args])
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    return code, err


def test_invalid_pool_exits_4_naming_pool_and_field_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, storage: Path
) -> None:
    config = _write(
        tmp_path / "quarry.toml",
        '[proxies.shop]\nendpoints = [\n  { protocol = "http", host = "h1", port = 8080, username = "u", '
        'password = "${QUARRY_TEST_PROXY_PW}" },\n  { protocol = "http", host = "h2", port = 70000, username = "u", '
        'password = "${QUARRY_TEST_PROXY_PW}" },\n]\n[proxy]\npool = "shop"\n',
    )
    code, err = _run_in_process(capsys, monkeypatch, tmp_path, storage, "--config", str(config))
    assert code == 4
    assert "proxies.shop.endpoints[1]: port must be an integer between 1 and 65535" in err
    assert not storage.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--proxy-pool", "nope"], 'unknown proxy pool "nope" (defined: shop)'),
        (["--proxy-strategy", "fastest"], 'invalid --proxy-strategy "fastest"'),
        (["--proxy-state-store", "etcd"], 'invalid --proxy-state-store "etcd"'),
        (
            ["--proxy-max-rotations", "-1"],
            "--proxy-max-rotations (proxy.max_rotations_per_run) must be an integer >= 0",
        ),
        (["--proxy-config", "LEGACY"], "cannot use --proxy-config and config file proxies"),
    ],
)
def test_proxy_usage_errors_exit_4(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    storage: Path,
    extra: list[str],
    message: str,
) -> None:
    config = _write(
        tmp_path / "quarry.toml",
        '[proxies.shop]\nendpoints = [{ protocol = "http", host = "h1", port = 8080 }]\n[proxy]\npool = "shop"\n',
    )
    legacy = _write(
        tmp_path / "pools.json", '[{"name": "x", "endpoints": [{"protocol": "http", "host": "h", "port": 1}]}]'
    )
    args = [str(legacy) if a == "LEGACY" else a for a in extra]
    code, err = _run_in_process(capsys, monkeypatch, tmp_path, storage, "--config", str(config), *args)
    assert code == 4, err
    assert message in err
    assert not storage.exists()


def test_unreachable_state_store_fails_selection_with_exit_4(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, storage: Path
) -> None:
    legacy = _write(
        tmp_path / "pools.json",
        json.dumps([{"name": "shop", "endpoints": [{"protocol": "http", "host": "h", "port": 1}]}]),
    )
    code, err = _run_in_process(
        capsys,
        monkeypatch,
        tmp_path,
        storage,
        "--no-config",
        "--proxy-config",
        str(legacy),
        "--proxy-pool",
        "shop",
        "--proxy-state-store",
        "redis",
        "--proxy-state-url",
        "redis://127.0.0.1:1/0",
    )
    assert code == 4, err
    assert "Warning: --proxy-config is deprecated" in err
    assert "Error: proxy selection failed: redis state store redis://127.0.0.1:1/0 unavailable" in err
    assert not list(storage.rglob("*.parquet")) and not list(storage.rglob("*.jsonl"))


FANOUT_SCRIPT = """
async def run(ctx):
    await ctx.page.goto(ctx.job["url"] + "?who=" + ctx.job.get("who", "root"))
    await ctx.emit.item(item_type="page", data={"who": ctx.job.get("who", "root"), "port": ctx.proxy.port})
    if "who" not in ctx.job:
        for who in ("c1", "c2"):
            await ctx.emit.enqueue(__file__, {"url": ctx.job["url"], "who": who})
"""


@pytest.mark.browser
def test_fan_out_children_select_again_each_through_its_own_endpoint(
    quarry: Any, site_url: str, storage: Path, tmp_path: Path
) -> None:
    script = tmp_path / "fan.py"
    script.write_text(FANOUT_SCRIPT)
    site_port = site_url.rsplit(":", 1)[1]
    url = f"http://shop.quarry.test:{site_port}/index.html"
    with forward_proxies(["a", "b", "c"], PASSWORD) as proxies:
        config = _config(tmp_path / "quarry.toml", proxies, ["a", "b", "c"])
        res = quarry(
            script, "--config", str(config), "--depth", "1", "--max-runs", "2", job={"url": url}, env=_env(tmp_path)
        )
        assert res.code == 0, res.stderr
        by_who = {a.url.rsplit("=", 1)[1]: a.endpoint for a in proxies.served("?who=")}
    # the root selected first; each child selected again at its own start (one shared round-robin counter)
    assert by_who["root"] == "a" and sorted(by_who.values()) == ["a", "b", "c"]
    items = {json.loads(r["payload"])["data"]["who"]: json.loads(r["payload"])["data"]["port"]
             for r in read_table(storage, "events", event_type="item")}  # fmt: skip
    assert {who: proxies.name_of_port(port) for who, port in items.items()} == by_who
    records: dict[str, dict[str, Any]] = {}
    for rec in read_table(storage, "runs"):
        if rec["run_id"] not in records or rec["updated_at"] > records[rec["run_id"]]["updated_at"]:
            records[rec["run_id"]] = rec
    assert sorted(proxies.name_of_port(r["proxy_used"]["port"]) for r in records.values()) == ["a", "b", "c"]
    _assert_password_nowhere([res.stdout, res.stderr], [storage, tmp_path / "xdg-state"])
