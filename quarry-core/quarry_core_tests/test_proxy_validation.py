"""proxy.md §1-§4, §10: model, redaction, sticky keys, validation messages and warnings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import quarry_core
import quarry_core.proxy as proxy
from quarry_core.errors import ConfigError
from quarry_core.proxy import (
    JobProxyRequest,
    ProxyEndpoint,
    ProxyPool,
    RedactedProxy,
    Rotation,
    Selection,
    SelectRequest,
    StateStoreConfig,
    StickyConfig,
    check_proxy_sources,
    load_pools,
    parse_legacy_proxy_config,
    redact_proxy_endpoint,
    select_request_for_job,
    selection_input_warnings,
    sticky_key_for,
    validate_proxy_endpoint,
    validate_proxy_pool,
    validate_run_proxy,
    validate_state_store_config,
)

SECRET = "s3cr3t-Zq9"


def ep(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"protocol": "http", "host": "p1.example", "port": 8080, "username": "u", "password": SECRET}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}


# ----------------------------------------------------------------------------------------------- model


def test_exports_sorted_and_redacted_proxy_is_shared() -> None:
    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)

    assert proxy.__all__ == sorted(proxy.__all__, key=key)
    for name in proxy.__all__:
        assert hasattr(proxy, name)
    from quarry_core.sdk import RedactedProxy as SdkRedacted

    assert SdkRedacted is RedactedProxy is quarry_core.RedactedProxy


def test_import_does_not_load_redis() -> None:
    import subprocess
    import sys

    code = "import sys, quarry_core.proxy, quarry_core.builtins; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_endpoint_server_request_and_redaction() -> None:
    e = ProxyEndpoint("http", "p1.example", 8080, "u", SECRET)
    assert e.server == "http://p1.example:8080"
    assert e.to_request_dict() == {
        "protocol": "http",
        "host": "p1.example",
        "port": 8080,
        "username": "u",
        "password": SECRET,
    }
    assert e.redacted() == RedactedProxy("http", "p1.example", 8080, "u")
    assert e.to_public_dict() == {
        "protocol": "http",
        "host": "p1.example",
        "port": 8080,
        "username": "u",
        "password_set": True,
    }
    assert redact_proxy_endpoint(e.to_request_dict()) == e.redacted()
    assert ProxyEndpoint("socks5", "h", 1).to_request_dict() == {"protocol": "socks5", "host": "h", "port": 1}
    assert "password='***'" in repr(e)


def test_no_repr_or_str_contains_the_password() -> None:
    e = ProxyEndpoint("http", "p1.example", 8080, "u", SECRET)
    pool = ProxyPool("res", "sticky", [e], sticky=StickyConfig("job", 10), recency_window=None)
    objects: list[object] = [
        e,
        pool,
        pool.endpoints,
        Selection("res", e, 0, "sticky", "job:x", True),
        Rotation("res", e, 0, 0, False, "sticky"),
        JobProxyRequest("res"),
        SelectRequest("res"),
        e.redacted(),
        Selection("res", e, 0, "sticky").to_dict(),
        pool.summary(),
    ]
    for obj in objects:
        assert SECRET not in repr(obj)
        assert SECRET not in str(obj)


# ----------------------------------------------------------------------------------------------- keys


def test_domain_and_origin_derived_from_job_url() -> None:
    req = select_request_for_job("p", {"url": "https://Shop.Example/p?x=1"}, job_id="j")
    assert (req.domain, req.origin, req.job_id) == ("shop.example", "https://shop.example:443", "j")
    req = select_request_for_job("p", {"url": "http://bücher.example:8080/x"})
    assert (req.domain, req.origin) == ("xn--bcher-kva.example", "http://xn--bcher-kva.example:8080")
    req = select_request_for_job("p", {"url": 42}, domain="A.Example", origin="HTTP://A.Example")
    assert (req.domain, req.origin) == ("a.example", "http://a.example:80")
    assert select_request_for_job("p", {}).domain is None


@pytest.mark.parametrize(
    ("sticky", "request_kw", "expected"),
    [
        (StickyConfig("domain"), {"sticky_key": "k", "domain": "d", "job_id": "j"}, "key:k"),
        (StickyConfig("job"), {"job_id": "j", "domain": "d"}, "job:j"),
        (StickyConfig("domain"), {"job_id": "j", "domain": "d"}, "domain:d"),
        (StickyConfig("origin"), {"job_id": "j", "origin": "https://d:443"}, "origin:https://d:443"),
        (None, {"job_id": "j"}, "job:j"),
        (StickyConfig("domain"), {"job_id": "j"}, None),
        (None, {}, None),
    ],
)
def test_sticky_key_precedence(sticky: StickyConfig | None, request_kw: dict[str, Any], expected: str | None) -> None:
    pool = ProxyPool("p", "sticky", [ProxyEndpoint("http", "h", 1)], sticky=sticky)
    assert sticky_key_for(pool, SelectRequest("p", **request_kw)) == expected


# ----------------------------------------------------------------------------------------------- validation


ERRORS: list[tuple[str, dict[str, Any], str]] = [
    ("bad name", {"endpoints": [ep()]}, 'proxies."bad name": invalid pool name'),
    ("-x", {"endpoints": [ep()]}, 'proxies."-x": invalid pool name'),
    (
        "r",
        {"strategy": "fastest", "endpoints": [ep()]},
        'proxies.r: unknown strategy "fastest" (valid: random, round_robin, sticky)',
    ),
    ("r", {"strategy": "random"}, "proxies.r: at least one endpoint is required"),
    ("r", {"endpoints": []}, "proxies.r: at least one endpoint is required"),
    ("r", {"endpoints": ep()}, "proxies.r.endpoints: expected a list of endpoints"),
    (
        "r",
        {"endpoints": [ep(), ep(protocol="ftp")]},
        "proxies.r.endpoints[1]: protocol must be one of http, https, socks5",
    ),
    ("r", {"endpoints": [ep(host="")]}, "proxies.r.endpoints[0]: host must be a non-empty string"),
    ("r", {"endpoints": [ep(host=f"http://u:{SECRET}@p1")]}, "proxies.r.endpoints[0]: host must be a bare host name"),
    ("r", {"endpoints": [ep(host="a b")]}, "proxies.r.endpoints[0]: host must be a bare host name"),
    ("r", {"endpoints": [ep(host="a/b")]}, "proxies.r.endpoints[0]: host must be a bare host name"),
    ("r", {"endpoints": [ep(), ep(port=0)]}, "proxies.r.endpoints[1]: port must be an integer between 1 and 65535"),
    ("r", {"endpoints": [ep(port=65536)]}, "proxies.r.endpoints[0]: port must be an integer between 1 and 65535"),
    ("r", {"endpoints": [ep(port=True)]}, "proxies.r.endpoints[0]: port must be an integer between 1 and 65535"),
    ("r", {"endpoints": [ep(port=80.0)]}, "proxies.r.endpoints[0]: port must be an integer between 1 and 65535"),
    ("r", {"endpoints": [ep(port=...)]}, "proxies.r.endpoints[0]: port must be an integer between 1 and 65535"),
    ("r", {"endpoints": [ep(username="")]}, "proxies.r.endpoints[0]: username and password must be set together"),
    ("r", {"endpoints": [ep(username=...)]}, "proxies.r.endpoints[0]: username and password must be set together"),
    ("r", {"endpoints": [ep(password=42)]}, "proxies.r.endpoints[0]: password must be a string"),
    ("r", {"endpoints": [ep(passwd=SECRET)]}, 'proxies.r.endpoints[0]: unknown key "passwd"'),
    (
        "r",
        {"strategy": "sticky", "sticky": {"scope": "tab"}, "endpoints": [ep()]},
        "proxies.r.sticky: scope must be one of domain, job, origin",
    ),
    (
        "r",
        {"strategy": "sticky", "sticky": {"scope": "job", "ttl_ms": 0}, "endpoints": [ep()]},
        "proxies.r.sticky: ttl_ms must be an integer > 0",
    ),
    (
        "r",
        {"strategy": "sticky", "sticky": {"ttl_ms": 1.5}, "endpoints": [ep()]},
        "proxies.r.sticky: ttl_ms must be an integer > 0",
    ),
    (
        "r",
        {"strategy": "random", "recency_window": 0, "endpoints": [ep()]},
        "proxies.r: recency_window must be an integer > 0",
    ),
    (
        "r",
        {"strategy": "random", "recency_window": False, "endpoints": [ep()]},
        "proxies.r: recency_window must be an integer > 0",
    ),
    ("r", {"endpoints": [ep()], "extra": 1}, 'proxies.r: unknown key "extra"'),
]


@pytest.mark.parametrize(("name", "raw", "message"), ERRORS)
def test_validation_errors(name: str, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pools({name: raw})
    assert str(info.value).startswith(message)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_valid_pools_sorted_with_defaults_and_coercion() -> None:
    pools, warnings = load_pools(
        {
            "zeta": {"strategy": "random", "recency_window": "3", "endpoints": [ep(port="8080")]},
            "alpha": {"endpoints": [ep(username="", password="")]},
            "mid.pool_1-x": {"strategy": "sticky", "sticky": {"scope": "origin", "ttl_ms": 60000}, "endpoints": [ep()]},
        }
    )
    assert list(pools) == ["alpha", "mid.pool_1-x", "zeta"]
    assert pools["alpha"].strategy == "round_robin"
    assert pools["alpha"].endpoints[0].username is None
    assert pools["alpha"].endpoints[0].password is None
    assert pools["zeta"].recency_window == 3
    assert pools["zeta"].endpoints[0].port == 8080
    assert pools["mid.pool_1-x"].sticky == StickyConfig("origin", 60000)
    assert warnings == []


def test_soft_warnings() -> None:
    many = [ep(host=f"h{i}.example") for i in range(51)]
    _, warnings = validate_proxy_pool(
        "rr", {"strategy": "round_robin", "endpoints": many, "recency_window": 2, "sticky": {"scope": "job"}}
    )
    assert warnings == [
        "Warning: proxies.rr: round_robin over 51 endpoints (more than 50); consider random with a recency_window",
        'Warning: proxies.rr: recency_window is ignored for strategy "round_robin" (random only)',
        'Warning: proxies.rr: sticky is ignored for strategy "round_robin" (sticky only)',
    ]
    _, warnings = validate_proxy_pool(
        "s",
        {
            "endpoints": [
                ep(protocol="socks5"),
                ep(protocol="socks5", username=..., password=...),
                ep(protocol="socks5"),
            ]
        },
    )
    assert warnings[0].startswith(
        "Warning: proxies.s.endpoints[0]: socks5 proxies are limited in Chromium; SOCKS5 authentication"
    )
    assert warnings[1] == "Warning: proxies.s.endpoints[1]: socks5 proxies are limited in Chromium"
    assert (
        warnings[3]
        == "Warning: proxies.s.endpoints[2]: duplicate of endpoints[0] (same protocol, host, port and username)"
    )
    assert all(w.startswith("Warning: ") and SECRET not in w for w in warnings)
    _, warnings = validate_proxy_pool("x", {"endpoints": [ep() for _ in range(50)]})
    assert not any("round_robin over" in w for w in warnings)


def test_scope_without_key_source_warns() -> None:
    pool, _ = validate_proxy_pool("s", {"strategy": "sticky", "sticky": {"scope": "domain"}, "endpoints": [ep()]})
    assert selection_input_warnings(pool, job={}) == [
        'Warning: proxies.s.sticky: scope "domain" but neither --proxy-domain nor a url in the job; '
        "sticky selection requires a sticky key"
    ]
    assert selection_input_warnings(pool, job={"url": "https://a.example"}) == []
    assert selection_input_warnings(pool, sticky_key="k") == []
    assert selection_input_warnings(pool, strategy="random") == []


def test_endpoint_helper_and_run_checks() -> None:
    assert validate_proxy_endpoint(ep(), path="x") == ProxyEndpoint("http", "p1.example", 8080, "u", SECRET)
    with pytest.raises(ConfigError, match=r"^x: port must be"):
        validate_proxy_endpoint(ProxyEndpoint("http", "h", 0), path="x")
    pools, _ = load_pools({"a": {"endpoints": [ep()]}})
    validate_run_proxy(pools, "a", "sticky")
    validate_run_proxy(pools, None)
    with pytest.raises(ConfigError, match=r'^unknown proxy pool "b" \(defined: a\)$'):
        validate_run_proxy(pools, "b")
    with pytest.raises(ConfigError, match=r'^invalid --proxy-strategy "fast" \(valid: random, round_robin, sticky\)$'):
        validate_run_proxy(pools, "a", "fast")
    with pytest.raises(ConfigError, match=r"^cannot use --proxy-config and config file proxies$"):
        check_proxy_sources("p.json", {"a": {}})
    check_proxy_sources("p.json", None)
    with pytest.raises(ConfigError, match="url is required"):
        validate_state_store_config(StateStoreConfig(type="redis"))
    assert validate_state_store_config(StateStoreConfig(type="memory", path="/x")) == [
        "Warning: proxy.state_store.path is ignored for the memory state store"
    ]


def test_legacy_proxy_config(tmp_path: Path) -> None:
    f = tmp_path / "proxies.json"
    f.write_text(
        json.dumps(
            [
                {"name": "b", "strategy": "random", "recencyWindow": 2, "endpoints": [ep()]},
                {"name": "a", "strategy": "sticky", "sticky": {"scope": "job", "ttlMs": 5}, "endpoints": [ep()]},
            ]
        )
    )
    pools, warnings = parse_legacy_proxy_config(f)
    assert list(pools) == ["a", "b"]
    assert pools["b"].recency_window == 2
    assert pools["a"].sticky == StickyConfig("job", 5)
    assert warnings[0].startswith("Warning: --proxy-config is deprecated")
    f.write_text(json.dumps([{"name": "a", "endpoints": [ep(port=0)]}]))
    with pytest.raises(ConfigError, match=r"^proxies.a.endpoints\[0\]: port must be"):
        parse_legacy_proxy_config(f)
    f.write_text('[{"name": "a", "endpoints": [{"password": "' + SECRET + '" ')
    with pytest.raises(ConfigError) as info:
        parse_legacy_proxy_config(f)
    assert SECRET not in str(info.value)
    f.write_text("{}")
    with pytest.raises(ConfigError, match="expected a JSON array of pools"):
        parse_legacy_proxy_config(f)
    with pytest.raises(ConfigError, match="not found"):
        parse_legacy_proxy_config(tmp_path / "missing.json")
