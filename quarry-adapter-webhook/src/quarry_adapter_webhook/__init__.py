"""quarry-adapter-webhook: POST each ``run_completed`` notification as JSON (CONTRACT_INTEGRATION §2).

Registered as notification adapter ``webhook`` through the ``quarry`` entry point ``adapter-webhook``
(:mod:`quarry_adapter_webhook.hooks`). :class:`WebhookAdapter` is resolved lazily, so importing this package (as
the entry point does) does not import httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loguru import logger as _logger

if TYPE_CHECKING:
    from quarry_adapter_webhook.adapter import WebhookAdapter

__version__ = "0.1.0"

_logger.disable("quarry_adapter_webhook")

__all__ = ["WebhookAdapter", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "WebhookAdapter":
        from quarry_adapter_webhook.adapter import WebhookAdapter

        return WebhookAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
