"""Breaks the run's own ``item`` events partition in Lode, emits an artifact and items, and repairs the partition
once the runtime's first batch attempt got as far as writing the artifact records (``job["repair"]`` false: never).

The partition directory ``…/events/…/run_id=<id>/event_type=item`` is replaced by a plain file, so writing an
``item`` data file fails (a real storage error, no mock) while chunks and ``artifact`` records still write: the
chunk phase of a batch commits and its event phase fails, which is where the flush modes differ.
"""

import asyncio
import glob
import os

from quarry_core import QuarryContext


def _block(storage: str, run_id: str) -> str:
    """Put a file where the run's ``item`` partition directory goes; returns the run's events directory."""
    root = os.path.join(storage, "datasets", "quarry")
    (run_dir,) = glob.glob(os.path.join(root, "runs", "source=*", "category=*", "day=*", f"run_id={run_id}"))
    events = os.path.join(root, "events", os.path.relpath(run_dir, os.path.join(root, "runs")))
    os.makedirs(events, exist_ok=True)
    with open(os.path.join(events, "event_type=item"), "w") as f:
        f.write("not a directory")
    return events


def _attempted(events: str) -> bool:
    return bool(glob.glob(os.path.join(events, "event_type=artifact", "*.parquet")))


async def run(ctx: QuarryContext) -> None:
    job = ctx.job
    events = _block(job["storage"], ctx.run.run_id)
    await ctx.emit.artifact(name="blob.bin", data=b"0123456789" * 100, content_type="application/octet-stream")
    for i in range(job.get("items", 3)):
        await ctx.emit.item(item_type="row", data={"i": i})
    if job.get("repair", True):
        for _ in range(2000):  # the first attempt wrote its artifact file, then failed on the item file
            if _attempted(events):
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        os.remove(os.path.join(events, "event_type=item"))
    await ctx.emit.run_complete(summary={"repaired": job.get("repair", True)})
