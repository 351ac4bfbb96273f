"""Garbage-collector settings for Quarry's own processes: the ``quarry`` CLI and the executor.

Every event the runtime ingests allocates a few containers (the decoded map, its payload, the :class:`Event`),
and every event an executor emits allocates its envelope. With CPython's default thresholds ``(700, 10, 10)`` a
young collection runs every 700 net allocations and a full one every ~70 000, and a full collection walks every
tracked object, those of the imported modules (pyarrow, Playwright, typer, loguru …; about 50 000 in an executor)
each time. Avoiding that cut the ingest loop's time per event by a fifth (12.3 → 9.9 µs, CONTRACT_RUN §3.2). So
Quarry's processes, and only they (a library user's process is left alone):

* :func:`tune_gc` (at process start) raises the young generation's threshold to :data:`YOUNG_THRESHOLD`;
* :func:`freeze_startup` (when start-up is over: the runtime before it reads its first frame, the executor before
  a script's ``run``) moves every object alive at that moment into the permanent generation
  (:func:`gc.freeze`), which full collections skip. Those objects are still freed when their reference count
  drops; only a reference cycle among them is never collected (start-up leaves few, and they would have lived
  until the next full collection anyway).

Reference cycles created later are collected as before. ``QUARRY_GC=default`` keeps CPython's settings.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping

__all__ = ["GC_ENV", "YOUNG_THRESHOLD", "freeze_startup", "tune_gc"]

#: environment variable; ``default`` keeps CPython's collector settings
GC_ENV = "QUARRY_GC"

#: net container allocations between young collections (CPython's default is 700)
YOUNG_THRESHOLD = 20_000

_frozen = [False]


def _enabled(env: Mapping[str, str] | None) -> bool:
    value = (os.environ if env is None else env).get(GC_ENV, "").strip().lower()
    return value != "default"


def tune_gc(env: Mapping[str, str] | None = None) -> bool:
    """Raise the young generation's threshold (older generations keep theirs). ``False`` when
    ``QUARRY_GC=default`` or the collector is disabled (a user's choice stands)."""
    if not _enabled(env) or not gc.isenabled():
        return False
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    return True


def freeze_startup(env: Mapping[str, str] | None = None) -> bool:
    """Move every object alive now into the permanent generation, once per process (later calls do nothing:
    a warm executor's second run must not freeze the first run's leftovers). ``False`` when nothing was done."""
    if _frozen[0] or not _enabled(env) or not gc.isenabled():
        return False
    _frozen[0] = True
    gc.freeze()  # no collection first: it would cost ~15 ms per process for the few cycles start-up leaves
    return True
