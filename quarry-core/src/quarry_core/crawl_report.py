"""The report's ``fan_out`` object (CONTRACT_CLI), built the same way by local fan-out and the Temporal crawl.

Standard library only, so a Temporal workflow sandbox can import it as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["fan_out_report"]


def fan_out_report(
    children: Sequence[Mapping[str, Any]],
    *,
    received: int,
    deduped: int,
    skipped: Mapping[str, int],
    abandoned: int,
) -> dict[str, Any]:
    """Counters of a crawl and its children (each ``{run_id, outcome, ...}``), children sorted by run id."""
    succeeded = sum(1 for c in children if c["outcome"] == "success")
    return {
        "runs_total": len(children),
        "runs_succeeded": succeeded,
        "runs_failed": len(children) - succeeded,
        "enqueue_received": received,
        "enqueue_deduped": deduped,
        "enqueue_skipped": sum(skipped.values()),
        "enqueue_skipped_by_reason": dict(skipped),
        "enqueue_abandoned": abandoned,
        "children": sorted(children, key=lambda c: str(c["run_id"])),
    }
