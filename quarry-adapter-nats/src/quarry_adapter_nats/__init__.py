"""quarry-adapter-nats: the ``nats`` notification adapter (core NATS and JetStream).

Registered through the ``quarry`` entry point ``adapter-nats`` (:mod:`quarry_adapter_nats.hooks`).
:class:`NatsAdapter` is resolved lazily, so importing this package (as the entry point does) does not import
nats-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loguru import logger as _logger

if TYPE_CHECKING:
    from quarry_adapter_nats.adapter import NatsAdapter

__version__ = "0.1.0"

_logger.disable("quarry_adapter_nats")

__all__ = ["NatsAdapter", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "NatsAdapter":
        from quarry_adapter_nats.adapter import NatsAdapter

        return NatsAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
