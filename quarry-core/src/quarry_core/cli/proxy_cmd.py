"""``quarry inspect proxy <pool>``, ``quarry stats proxies`` and ``quarry debug resolve proxy <pool>``
(CONTRACT_PROXY §10).

Both read the pools from the configuration (``[proxies]``, or the deprecated ``--proxy-config`` JSON file) and
the selection state from the configured state store (``proxy.state_store.*``, ``QUARRY_PROXY_STATE_*`` or the
flags), the same way ``quarry run`` does. ``inspect proxy`` only reads; ``debug resolve proxy`` peeks unless
``--commit``, which advances the real store exactly like a run start. Passwords never appear: endpoints show
``password_set`` (inspect) or no credential at all (resolve).

Exit codes: 0 ok; 1 unknown pool or an unreachable store; 4 configuration or usage errors.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from quarry_core.cli.common import FormatOption, NoColorOption, emit_output
from quarry_core.outcomes import ExitCode

__all__ = ["debug_resolve_proxy", "inspect_proxy", "resolve_app", "stats_proxies"]

#: Exit code for an unknown pool or an unreachable state store.
NOT_FOUND = 1

_CONFIG = "Configuration"

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: ./quarry.toml, ./pyproject.toml).", rich_help_panel=_CONFIG),
]
NoConfigOpt = Annotated[
    bool, typer.Option("--no-config", help="Skip QUARRY_CONFIG and config discovery.", rich_help_panel=_CONFIG)
]
ProxyConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--proxy-config",
        envvar="QUARRY_PROXY_CONFIG",
        help="Deprecated: JSON array of pools.",
        rich_help_panel=_CONFIG,
    ),
]
StateStoreOpt = Annotated[
    str | None,
    typer.Option("--proxy-state-store", help="file (default), memory, redis or a plugin.", rich_help_panel=_CONFIG),
]
StatePathOpt = Annotated[
    str | None, typer.Option("--proxy-state-path", help="file store directory.", rich_help_panel=_CONFIG)
]
StateUrlOpt = Annotated[str | None, typer.Option("--proxy-state-url", help="redis store URL.", rich_help_panel=_CONFIG)]


#: ``quarry debug resolve``: what a run would be given (``debug resolve proxy <pool>``).
resolve_app = typer.Typer(name="resolve", help="Show what a run would be given.", no_args_is_help=True)


class _Failure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _selector(
    config: Path | None,
    no_config: bool,
    proxy_config: Path | None,
    state_store: str | None,
    state_path: str | None,
    state_url: str | None,
) -> Any:
    """The pools and state store of the merged configuration (flags > ``QUARRY_*`` > config file)."""
    from quarry_core.cli.logs import setup_logging
    from quarry_core.config import env_layer, explicit_config_path, load_config, merge_layers
    from quarry_core.errors import ConfigError, PluginError
    from quarry_core.plugins import PluginHost
    from quarry_core.proxy.errors import ProxyError
    from quarry_core.runtime.proxying import load_proxy_config, open_selector

    setup_logging("warning", "text")
    try:
        cfg = load_config(explicit=explicit_config_path(config, no_config=no_config), no_config=no_config)
        cli_layer = {
            "proxy.state_store.type": state_store,
            "proxy.state_store.path": state_path,
            "proxy.state_store.url": state_url,
        }
        view = merge_layers(None, cfg, env_layer(os.environ), cli_layer)
        host = PluginHost.build()
        loaded = load_proxy_config(view, host, legacy_config=proxy_config)
        for warning in loaded.warnings:
            sys.stderr.write(warning + "\n")
        return open_selector(loaded.pools, loaded.store, host)
    except (ConfigError, PluginError) as exc:
        raise _Failure(str(exc), ExitCode.USAGE) from None
    except ProxyError as exc:
        raise _Failure(str(exc), NOT_FOUND) from None


def _pool_or_fail(selector: Any, pool: str) -> None:
    if pool not in selector.pools:
        defined = ", ".join(sorted(selector.pools)) or "none"
        raise _Failure(f'unknown proxy pool "{pool}" (defined: {defined})', NOT_FOUND)


async def _with_store(selector: Any, call: Any) -> Any:
    from quarry_core.runtime.proxying import close_selector

    try:
        return await call
    finally:
        await close_selector(selector)


def _run(body: Any) -> int:
    from quarry_core.errors import ConfigError
    from quarry_core.proxy.errors import ProxyError

    try:
        return int(body())
    except _Failure as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return exc.code
    except ConfigError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return int(ExitCode.USAGE)
    except ProxyError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return NOT_FOUND


def inspect_proxy(
    pool: Annotated[str, typer.Argument(help="Pool name (config [proxies.<name>]).", show_default=False)],
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
    proxy_config: ProxyConfigOpt = None,
    proxy_state_store: StateStoreOpt = None,
    proxy_state_path: StatePathOpt = None,
    proxy_state_url: StateUrlOpt = None,
    format: FormatOption = None,
    no_color: NoColorOption = False,
) -> int:
    """A pool's configuration and its state store's live state (round-robin index, sticky entries, recency)."""

    def body() -> int:
        selector = _selector(config, no_config, proxy_config, proxy_state_store, proxy_state_path, proxy_state_url)
        _pool_or_fail(selector, pool)
        data = asyncio.run(_with_store(selector, selector.describe(pool)))
        emit_output(data, format, no_color)
        return 0

    return _run(body)


def stats_proxies(
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
    proxy_config: ProxyConfigOpt = None,
    proxy_state_store: StateStoreOpt = None,
    proxy_state_path: StatePathOpt = None,
    proxy_state_url: StateUrlOpt = None,
    format: FormatOption = None,
    no_color: NoColorOption = False,
) -> int:
    """Per pool: requests (selections), failures (rotations) and the last use, from the state store."""

    def body() -> int:
        selector = _selector(config, no_config, proxy_config, proxy_state_store, proxy_state_path, proxy_state_url)
        emit_output(asyncio.run(_with_store(selector, selector.stats())), format, no_color)
        return 0

    return _run(body)


@resolve_app.command("proxy")
def debug_resolve_proxy(
    pool: Annotated[str, typer.Argument(help="Pool name (config [proxies.<name>]).", show_default=False)],
    commit: Annotated[
        bool, typer.Option("--commit", help="Commit the selection to the configured store (default: peek).")
    ] = False,
    strategy: Annotated[str | None, typer.Option("--strategy", help="Strategy override.")] = None,
    sticky_key: Annotated[str | None, typer.Option("--sticky-key", help="Explicit sticky key.")] = None,
    job_id: Annotated[str | None, typer.Option("--job-id", help="Job id (sticky scope job).")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Domain (sticky scope domain).")] = None,
    origin: Annotated[str | None, typer.Option("--origin", help="Origin (sticky scope origin).")] = None,
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
    proxy_config: ProxyConfigOpt = None,
    proxy_state_store: StateStoreOpt = None,
    proxy_state_path: StatePathOpt = None,
    proxy_state_url: StateUrlOpt = None,
    format: FormatOption = None,
    no_color: NoColorOption = False,
) -> int:
    """The endpoint a run would get now: a peek that changes nothing, or with --commit a real selection."""
    from quarry_core.proxy.keys import select_request_for_job

    def body() -> int:
        selector = _selector(config, no_config, proxy_config, proxy_state_store, proxy_state_path, proxy_state_url)
        _pool_or_fail(selector, pool)
        if strategy is not None and strategy not in selector.strategies:
            valid = ", ".join(sorted(selector.strategies))
            raise _Failure(f'invalid --strategy "{strategy}" (valid: {valid})', ExitCode.USAGE)
        request = select_request_for_job(
            pool,
            None,
            job_id=job_id,
            strategy_override=strategy,
            sticky_key=sticky_key,
            domain=domain,
            origin=origin,
            commit=commit,
        )
        selection = asyncio.run(_with_store(selector, selector.select(request)))
        for warning in selection.warnings:
            sys.stderr.write(warning + "\n")
        emit_output(selection.to_dict(), format, no_color)
        return 0

    return _run(body)
