"""quarry-adapter-example: notification adapter ``example`` (a JSON Lines file per target)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
