"""quarry_policy_strict: the ``strict`` ingestion policy (policies.md §4).

Registered through the ``quarry`` entry point ``policy-strict`` (:mod:`quarry_policy_strict.hooks`).
"""

from loguru import logger as _logger

from quarry_policy_strict.policy import StrictPolicy, validate_config

__version__ = "0.1.0"

_logger.disable("quarry_policy_strict")

__all__ = ["StrictPolicy", "__version__", "validate_config"]
