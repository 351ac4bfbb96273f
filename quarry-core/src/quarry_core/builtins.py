"""Implementations that ship inside quarry-core itself, registered directly by the plugin host (not through an
entry point): proxy selection strategies and proxy state stores."""

from __future__ import annotations

__all__: list[str] = []
