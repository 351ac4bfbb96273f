"""Proxy errors. Both derive from :class:`quarry_core.errors.QuarryError`::

    QuarryError
    └── ProxyError                   a selection or rotation could not be made
        └── ProxyStateStoreError     the state store is unreachable, locked too long or unusable

Messages never contain a password.
"""

from __future__ import annotations

from quarry_core.errors import QuarryError

__all__ = ["ProxyError", "ProxyStateStoreError"]


class ProxyError(QuarryError):
    """A proxy selection or rotation failed (``proxy selection failed: <message>`` at run start)."""


class ProxyStateStoreError(ProxyError):
    """The proxy state store could not be read or updated (unreachable, lock timeout, I/O error)."""
