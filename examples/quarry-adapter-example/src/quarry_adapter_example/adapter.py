"""The ``example`` adapter: one JSON line per ``run_completed`` event, appended to a local file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from quarry_core.errors import ConfigError
from quarry_core.interfaces import AdapterConfig
from quarry_core.notify import RetryableNotificationError

__all__ = ["JsonLinesAdapter", "target_path"]


def target_path(url: str) -> Path:
    """``file:///abs/path.jsonl`` or a plain path; its directory must exist."""
    text = (url or "").strip()
    if not text:
        raise ConfigError("invalid adapter config: example adapter needs --adapter-url FILE (a .jsonl path)")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme != "file":
            raise ConfigError(f"invalid adapter config: example adapter writes local files, got a {parts.scheme} URL")
        text = unquote(parts.path)
    path = Path(text)
    if not path.parent.is_dir():
        raise ConfigError(f"invalid adapter config: example adapter: directory does not exist: {path.parent}")
    return path


class JsonLinesAdapter:
    """Appends the event (or the ``fields`` subset) as one line; ``fail_first`` attempts fail on purpose."""

    def __init__(self, config: AdapterConfig) -> None:
        self.path = target_path(config.url)
        fields = str(config.options.get("fields") or "")
        self.fields = [f.strip() for f in fields.split(",") if f.strip()]
        self.fail_first = int(config.options.get("fail_first", 0))
        self.attempts = 0

    async def publish(self, event: Mapping[str, Any]) -> None:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            # a retryable failure: Quarry waits 0.5 s × 2^(i−1) and tries again
            raise RetryableNotificationError(f"example: failing attempt {self.attempts} on purpose")
        body = {k: event[k] for k in self.fields if k in event} if self.fields else dict(event)
        line = json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n"
        # one write() of a whole line in append mode: concurrent runs never interleave lines
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    async def close(self) -> None:
        """Nothing to release."""
