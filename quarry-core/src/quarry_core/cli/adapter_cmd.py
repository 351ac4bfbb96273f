"""``quarry adapter drain``: retry the notifications the outbox still holds as ``pending``
(CONTRACT_INTEGRATION §3).

It takes ``run``'s storage options and adapter options (same flags, ``QUARRY_*`` variables and config keys), reads
the ``outbox`` table through the storage backend plugin and publishes every due entry's stored payload unchanged
with the adapter it was stored for (several adapters: ``--adapter`` repeated, or ``[[adapters]]``).
Prints ``{examined, delivered, failed, expired, skipped}`` (``--dry-run`` adds the ``pending`` list and publishes
nothing); exit 0 if nothing failed, 1 otherwise, 4 for configuration errors.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer

from quarry_core.cli.read_common import ReadContext, ReadFailure, read_command
from quarry_core.outcomes import ExitCode

__all__ = ["adapter_app", "drain"]

adapter_app = typer.Typer(name="adapter", help="Notification adapters: the outbox.", no_args_is_help=True)

_ADAPTER = "Adapter"

#: drain parameter → config key (the same keys ``quarry run`` resolves).
_ADAPTER_KEYS = {
    "adapter": "adapter.type",
    "adapter_url": "adapter.url",
    "adapter_header": "adapter.headers",
    "adapter_timeout": "adapter.timeout",
    "adapter_retries": "adapter.retries",
    "adapter_channel": "adapter.channel",
    "adapter_subject": "adapter.subject",
    "adapter_region": "adapter.region",
    "adapter_endpoint": "adapter.endpoint",
    "adapter_option": "adapter.options",
}


def _seconds(flag: str, text: str) -> float:
    from quarry_core.units import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ReadFailure(f"{flag}: {exc}", ExitCode.USAGE) from None
    if value < 0:
        raise ReadFailure(f"{flag} must be >= 0", ExitCode.USAGE)
    return value


def _pairs(flag: str, items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ReadFailure(f'invalid adapter config: invalid {flag} "{key}…": expected KEY=VALUE', ExitCode.USAGE)
        out[key.strip()] = value
    return out


def _resolve(ctx: ReadContext, given: dict[str, Any]) -> Any:
    """The merged ``adapter.*`` configuration: command line > ``QUARRY_ADAPTER_*`` > config file."""
    from quarry_core.config import ENV_VARS, env_value, merge_layers

    cli: dict[str, Any] = {}
    for name, key in _ADAPTER_KEYS.items():
        value = given.get(name)
        if value is None:
            continue
        if name == "adapter" and not value:
            continue
        if name == "adapter_timeout":
            value = _seconds("--adapter-timeout", value)
        elif name in ("adapter_header", "adapter_option"):
            value = _pairs("--" + name.replace("_", "-"), value)
        cli[key] = value
    env: dict[str, Any] = {}
    for var in ENV_VARS:
        if var.key.startswith("adapter.") and var.key not in env:
            value = env_value(var.name, var.kind, os.environ, secret=var.secret)
            if value is not None:
                env[var.key] = value
    return merge_layers(None, ctx.config, env, cli)


@adapter_app.command("drain")
@read_command("adapter")
def drain(
    ctx: ReadContext,
    older_than: Annotated[
        str, typer.Option("--older-than", help="Only entries whose last attempt is at least this old.")
    ] = "1m",
    max_age: Annotated[
        str | None,
        typer.Option("--max-age", help="Give up on entries older than this (adapter.max_age, default 7d)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most N entries, oldest first (0 = all).")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the due entries; publish nothing.")] = False,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter",
            help="An adapter to publish with (repeatable; entries go to the adapter of their name).",
            rich_help_panel=_ADAPTER,
        ),
    ] = None,
    adapter_url: Annotated[
        str | None,
        typer.Option("--adapter-url", help="Where the adapter publishes (adapter.url).", rich_help_panel=_ADAPTER),
    ] = None,
    adapter_header: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter-header", help="webhook: header K=V (repeatable; values redacted).", rich_help_panel=_ADAPTER
        ),
    ] = None,
    adapter_timeout: Annotated[
        str | None,
        typer.Option(
            "--adapter-timeout", help="Bound of each publish and its retries (default 10s).", rich_help_panel=_ADAPTER
        ),
    ] = None,
    adapter_retries: Annotated[
        int | None,
        typer.Option(
            "--adapter-retries", help="Retries after the first attempt (default 3).", rich_help_panel=_ADAPTER
        ),
    ] = None,
    adapter_channel: Annotated[
        str | None, typer.Option("--adapter-channel", help="redis: channel.", rich_help_panel=_ADAPTER)
    ] = None,
    adapter_subject: Annotated[
        str | None, typer.Option("--adapter-subject", help="nats: subject.", rich_help_panel=_ADAPTER)
    ] = None,
    adapter_region: Annotated[
        str | None, typer.Option("--adapter-region", help="sns: region.", rich_help_panel=_ADAPTER)
    ] = None,
    adapter_endpoint: Annotated[
        str | None, typer.Option("--adapter-endpoint", help="sns: endpoint URL.", rich_help_panel=_ADAPTER)
    ] = None,
    adapter_option: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter-option",
            help="An option the adapter declares, K=V, or NAME.K=V for one of several adapters (repeatable).",
            rich_help_panel=_ADAPTER,
        ),
    ] = None,
) -> int:
    """Retry undelivered notifications from the outbox (written by quarry run --adapter-outbox)."""
    from quarry_core.cli.adapter_options import adapter_settings
    from quarry_core.errors import ConfigError, PluginError
    from quarry_core.plugins import PluginHost
    from quarry_core.runtime import outbox
    from quarry_core.runtime.notifications import DEFAULT_MAX_AGE

    if limit < 0:
        raise ReadFailure("--limit must be >= 0", ExitCode.USAGE)
    older = _seconds("--older-than", older_than)
    given = {
        "adapter": adapter,
        "adapter_url": adapter_url,
        "adapter_header": adapter_header,
        "adapter_timeout": adapter_timeout,
        "adapter_retries": adapter_retries,
        "adapter_channel": adapter_channel,
        "adapter_subject": adapter_subject,
        "adapter_region": adapter_region,
        "adapter_endpoint": adapter_endpoint,
        "adapter_option": adapter_option,
    }
    try:
        host = PluginHost.build()
        view = _resolve(ctx, given)
        settings = adapter_settings(view, host)
        storage_rec = host.storage_backend(ctx.storage.backend)
        if storage_rec.record.validate is not None:
            storage_rec.record.validate(ctx.storage)
    except (ConfigError, PluginError) as exc:
        raise ReadFailure(str(exc), ExitCode.USAGE) from None
    if settings is None and not dry_run:
        raise ReadFailure(
            "invalid adapter config: quarry adapter drain needs an adapter to publish with: "
            "--adapter NAME --adapter-url URL (or adapter.type / adapter.url in the config file)",
            ExitCode.USAGE,
        )
    ceiling = _seconds("--max-age", max_age) if max_age is not None else None
    if ceiling is None:
        ceiling = settings.max_age if settings is not None else DEFAULT_MAX_AGE
    rows = outbox.read_rows(host, ctx.storage)
    adapters = settings.adapters if settings is not None else {}
    report = asyncio.run(
        outbox.drain(host, ctx.storage, rows, adapters, older_than=older, max_age=ceiling, limit=limit, dry_run=dry_run)
    )
    data: dict[str, Any] = report.counts()
    if dry_run:
        data["pending"] = report.pending
    ctx.emit(data)
    return 0 if report.failed == 0 else 1
