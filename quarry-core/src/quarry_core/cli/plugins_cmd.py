"""``quarry plugins`` and ``quarry version``."""

from __future__ import annotations

import platform
from typing import Annotated

import typer

from quarry_core.cli.common import FormatOption, NoColorOption, emit_output, fail

__all__ = ["plugins", "version"]


def plugins(
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind (e.g. ingestion_policy).")] = None,
    format: FormatOption = None,
    no_color: NoColorOption = False,
) -> int:
    """List installed plugins (kind, name, distribution, version, summary) and plugin load errors."""
    import os

    from quarry_core.errors import PluginLoadError
    from quarry_core.plugins import PluginHost, describe_records
    from quarry_core.registrations import KINDS

    if kind is not None and kind not in KINDS:
        return fail(f'unknown plugin kind "{kind}" (valid: {", ".join(KINDS)})')
    strict = os.environ.get("QUARRY_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")
    try:
        host = PluginHost.build(strict=False)
    except PluginLoadError as exc:  # pragma: no cover - strict is handled below
        return fail(str(exc))
    rows = describe_records(host, kind)
    data = {
        "plugins": list(rows),
        "load_errors": [
            {"entry_point": e.entry_point, "distribution": e.distribution, "error": e.error} for e in host.load_errors
        ],
    }
    emit_output(data, format, no_color, table_key="plugins")
    return 1 if strict and host.load_errors else 0


def version(format: FormatOption = None, no_color: NoColorOption = False) -> int:
    """Print the Quarry version, contract version, Python, Playwright and first-party distributions."""
    import importlib.metadata as md

    from quarry_core import __version__
    from quarry_core.protocol.constants import CONTRACT_VERSION

    def dist_version(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    dists = {}
    for name in (
        "quarry-core",
        "quarry-executor",
        "quarry-lode",
        "quarry-policy-strict",
        "quarry-policy-buffered",
        "quarry-adapter-webhook",
    ):
        v = dist_version(name)
        if v is not None:
            dists[name] = v
    data = {
        "version": __version__,
        "contract_version": CONTRACT_VERSION,
        "python": platform.python_version(),
        "playwright": dist_version("playwright"),
        "distributions": dists,
    }
    emit_output(data, format, no_color)
    return 0
