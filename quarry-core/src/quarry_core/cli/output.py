"""Rendering of command results: ``--format json|table|yaml`` (CONTRACT_CLI output formats)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from quarry_core.errors import ConfigError

__all__ = ["FORMATS", "render", "resolve_format"]

FORMATS = ("json", "table", "yaml")


def resolve_format(value: str | None) -> str:
    if value is None:
        return "table" if sys.stdout.isatty() else "json"
    v = value.lower()
    if v not in FORMATS:
        raise ConfigError(f'invalid format: "{value}" (must be json, table, or yaml)')
    return v


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, Mapping):
        return f"{{{len(value)} keys}}"
    return str(value)


def _yaml(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines = []
        for k, v in value.items():
            if isinstance(v, (Mapping, list)) and v:
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {_yaml(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        lines = []
        for v in value:
            if isinstance(v, Mapping) and v:
                inner = _yaml(v, indent + 1).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {_yaml(v)}")
        return "\n".join(lines)
    return json.dumps(value, ensure_ascii=False)


def render(data: Any, fmt: str, *, no_color: bool = False) -> str:
    """Render ``data`` (an object or a list of objects) in one of :data:`FORMATS`; always ends with a newline."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return _yaml(data) + "\n"
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    buf = StringIO()
    color = sys.stdout.isatty() and not no_color
    console = Console(file=buf, force_terminal=color, no_color=not color, width=160)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if not data:
            return "(no results)\n"
        headers = list(data[0].keys())
        table = Table(*headers, box=None)
        for row in data:
            table.add_row(*(_cell(row.get(h)) for h in headers))
    else:
        table = Table("key", "value", box=None, show_header=False)
        for k, v in dict(data).items():
            table.add_row(k, _cell(v))
    console.print(table)
    return buf.getvalue()
