"""storage.put failures the script survives, big sidecar files, ctx.memory and the batchers; ``job["mode"]``."""

import hashlib

from quarry_core import (
    QuarryContext,
    StoragePutError,
    create_batcher,
    create_storage_batcher,
)


async def run(ctx: QuarryContext) -> None:
    mode = ctx.job["mode"]
    if mode == "readonly":
        try:
            await ctx.storage.put("blocked.txt", b"nope", content_type="text/plain")
            await ctx.emit.item(item_type="put", data={"ok": True})
        except StoragePutError as exc:
            await ctx.emit.item(item_type="put", data={"ok": False, "kind": exc.kind, "message": str(exc)})
        for n in range(5):
            await ctx.emit.item(item_type="row", data={"n": n})
    elif mode == "big":
        size = ctx.job["size"]
        block = hashlib.sha256(b"quarry").digest() * (size // 32 + 1)
        data = block[:size]
        result = await ctx.storage.put("big.bin", data, content_type="application/octet-stream")
        await ctx.emit.item(item_type="big", data={"key": result.key, "sha256": hashlib.sha256(data).hexdigest()})
    elif mode == "memory":
        await ctx.page.goto(ctx.job["url"])
        snap = await ctx.memory.snapshot()
        no_browser = await ctx.memory.snapshot(browser=False)
        try:
            ctx.memory.configure(moderate=0.8)  # above high=0.7: rejected, thresholds unchanged
            rejected = False
        except ValueError:
            rejected = True
        ctx.memory.configure(moderate=1e-9, high=2e-9, critical=3e-9)
        await ctx.emit.item(
            item_type="memory",
            data={
                "process_used": snap.process.used,
                "process_limit": snap.process.limit,
                "browser": None if snap.browser is None else [snap.browser.used, snap.browser.limit],
                "browser_opted_out": no_browser.browser is None,
                "cgroup": None if snap.cgroup is None else [snap.cgroup.used, snap.cgroup.limit],
                "pressure": snap.pressure,
                "bad_thresholds_rejected": rejected,
                "critical_now": await ctx.memory.is_above("critical"),
                "above_low": await ctx.memory.is_above("low"),
            },
        )
    elif mode == "batchers":
        links = create_batcher(ctx.emit, size=50, target="detail.py", category="details")
        for n in range(120):
            await links.add({"n": n})
        pending_before_flush = links.pending
        await links.flush()
        files = create_storage_batcher(ctx.storage, concurrency=3)
        futures = [files.add(f"page-{n}.txt", f"body {n}".encode(), content_type="text/plain") for n in range(10)]
        await files.flush()
        keys = [f.result().key for f in futures]
        failing = create_storage_batcher(ctx.storage, concurrency=1)
        first = failing.add("ok-1.txt", b"1")
        bad = failing.add("page-0.txt", b"again")  # exists already: rejected by the runtime (path_exists)
        queued = failing.add("never.txt", b"x")
        try:
            await failing.flush()
            flush_error = None
        except StoragePutError as exc:
            flush_error = exc.kind
        late = failing.add("late.txt", b"y")
        await ctx.emit.item(
            item_type="batchers",
            data={
                "pending_before_flush": pending_before_flush,
                "keys": keys,
                "first_ok": first.done() and first.exception() is None,
                "bad_kind": getattr(bad.exception(), "kind", None),
                "queued_failed": queued.done() and queued.exception() is bad.exception(),
                "late_failed": late.done() and late.exception() is not None,
                "flush_error": flush_error,
                "pending_after": failing.pending,
            },
        )
