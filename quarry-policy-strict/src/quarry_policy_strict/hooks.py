"""Entry point of quarry-policy-strict (``[project.entry-points.quarry] policy-strict``).

Imports nothing heavy: the policy module is imported inside the factory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from quarry_core import hookimpl
from quarry_core.registrations import IngestionPolicyPlugin

if TYPE_CHECKING:
    from quarry_core.interfaces import IngestionPolicy, PolicyConfig, PolicyContext, Sink

__all__ = ["make_strict_policy", "quarry_ingestion_policies", "validate_strict_config"]


def make_strict_policy(config: PolicyConfig, sink: Sink, context: PolicyContext) -> IngestionPolicy:
    """Factory of the ``strict`` policy: ``(PolicyConfig, Sink, PolicyContext) -> IngestionPolicy``."""
    from quarry_policy_strict.policy import StrictPolicy

    return StrictPolicy(config, sink, context)


def validate_strict_config(config: PolicyConfig) -> None:
    """Raise ``ConfigError`` for settings strict cannot run with (a negative ``max_flush_retries``)."""
    from quarry_policy_strict.policy import validate_config

    validate_config(config)


@hookimpl
def quarry_ingestion_policies() -> Iterator[IngestionPolicyPlugin]:
    yield IngestionPolicyPlugin(
        name="strict",
        factory=make_strict_policy,
        summary="commit every event and chunk before waiting for the next frame (group commit); never drops",
        validate=validate_strict_config,
        option_names=frozenset({"max_flush_retries"}),
    )
