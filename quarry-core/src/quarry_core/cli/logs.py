"""Logging setup for the CLI: the only place that adds loguru sinks (libraries stay quiet)."""

from __future__ import annotations

import json
import sys
from typing import Any

from loguru import logger

__all__ = ["LEVELS", "enable_library_logs", "setup_logging"]

LEVELS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR"}
_PACKAGES = (
    "quarry_core",
    "quarry_executor",
    "quarry_lode",
    "quarry_policy_strict",
    "quarry_policy_buffered",
    "quarry_adapter_webhook",
)


def _json_sink(message: Any) -> None:
    record = message.record
    extra = dict(record["extra"])
    out: dict[str, Any] = {
        "timestamp": record["time"].astimezone().isoformat(timespec="microseconds"),
        "level": record["level"].name.lower(),
        "message": record["message"],
    }
    for key in ("run_id", "attempt", "job_id", "parent_run_id", "source"):
        if key in extra:
            out[key] = extra.pop(key)
    out["fields"] = extra
    sys.stderr.write(json.dumps(out, default=str) + "\n")


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Send Quarry's logs to stderr as text (``HH:MM:SS LEVEL message``) or JSON lines."""
    logger.remove()
    lvl = LEVELS.get(level, "INFO")
    if fmt == "json":
        logger.add(_json_sink, level=lvl)
    else:
        logger.add(sys.stderr, level=lvl, format="{time:HH:mm:ss} {level} {message}", colorize=False)
    enable_library_logs()


def enable_library_logs() -> None:
    """Let Quarry's libraries log. Each disables itself when first imported (``logger.disable``), so call this
    again after plugins were loaded (``PluginHost.build()``), or a plugin imported later stays silent."""
    for pkg in _PACKAGES:
        logger.enable(pkg)
