"""``ctx.storage.put``: file_write / file_write_chunk frames, acks, rejections and filename rules."""

from __future__ import annotations

from typing import Any

import pytest

from quarry_core.errors import StorageFilenameError
from quarry_core.protocol import FileWriteAck
from quarry_executor.storage import check_filename


def ack_rejecting_duplicates(seen: set[str]) -> Any:
    def ack(f: Any) -> FileWriteAck:
        if f.filename in seen:
            return FileWriteAck(
                write_id=f.write_id, ok=False, error=f"files/{f.filename}: already exists", error_kind="path_exists"
            )
        seen.add(f.filename)
        return FileWriteAck(write_id=f.write_id, ok=True, key=f"files/{f.filename}")

    return ack


@pytest.mark.browser
def test_put_ok_rejected_and_bad_filenames(execute: Any) -> None:
    res = execute(
        """
        import asyncio
        from quarry_core import StorageFilenameError, StoragePutError, StorageSizeError, StoragePutResult

        async def run(ctx):
            first = await ctx.storage.put("report.json", b'{"a": 1}', content_type="application/json")
            assert isinstance(first, StoragePutResult)
            try:
                await ctx.storage.put("report.json", b"again")
                rejected = None
            except StoragePutError as exc:
                rejected = {"message": str(exc), "kind": exc.kind}
            bad = 0
            for name in ["", "a/b", "a\\\\b", "..", ".", "x..y", "nul\\x00", "tab\\tname", "x.meta.json",
                         "é" * 200]:
                try:
                    await ctx.storage.put(name, b"x")
                except StorageFilenameError:
                    bad += 1
            try:
                await ctx.storage.put("s.txt", "not bytes")
            except StorageSizeError:
                bad += 1
            # puts pipeline: several in flight at once, acks matched by write_id
            keys = await asyncio.gather(*(ctx.storage.put(f"p{i}.txt", b"%d" % i) for i in range(5)))
            await ctx.emit.item("puts", {"first": first.key, "rejected": rejected, "bad": bad,
                                         "keys": [k.key for k in keys]})
        """,
        ack=ack_rejecting_duplicates(set()),
    )
    assert res.code == 0, res.stderr
    data = res.item("puts")
    assert data["first"] == "files/report.json"
    assert data["rejected"] == {"message": "files/report.json: already exists", "kind": "path_exists"}
    assert data["bad"] == 11
    assert data["keys"] == [f"files/p{i}.txt" for i in range(5)]
    writes = [f for f in res.frames if f["type"] == "file_write"]
    assert [w["write_id"] for w in writes] == list(range(1, 8))
    assert [w["filename"] for w in writes] == ["report.json", "report.json"] + [f"p{i}.txt" for i in range(5)]
    assert writes[0]["content_type"] == "application/json" and writes[0]["data"] == b'{"a": 1}'
    assert writes[1]["content_type"] == "application/octet-stream"
    assert res.types[-3:] == ["item", "run_complete", "run_result"]
    assert [e["seq"] for e in res.events] == [1, 2]


@pytest.mark.browser
def test_large_put_is_sent_as_chunks(execute: Any) -> None:
    res = execute(
        """
        async def run(ctx):
            data = bytes(range(251)) * (20 * 1024 * 1024 // 251 + 1)
            result = await ctx.storage.put("big.bin", data)
            exact = await ctx.storage.put("exact.bin", b"e" * (8 * 1024 * 1024))
            await ctx.emit.item("big", {"key": result.key, "size": len(data), "exact": exact.key})
        """,
        timeout=120,
    )
    assert res.code == 0, res.stderr
    chunks = [f for f in res.frames if f["type"] == "file_write_chunk"]
    mib = 1024 * 1024
    size = res.item("big")["size"]
    assert [len(c["data"]) for c in chunks] == [8 * mib, 8 * mib, size - 16 * mib]
    assert [(c["write_id"], c["seq"], c["is_last"]) for c in chunks] == [(1, 1, False), (1, 2, False), (1, 3, True)]
    assert {(c["filename"], c["content_type"]) for c in chunks} == {("big.bin", "application/octet-stream")}
    assert res.files[0].data == (bytes(range(251)) * (20 * mib // 251 + 1))
    # exactly 8 MiB still fits one file_write
    exact = [f for f in res.frames if f["type"] == "file_write"]
    assert len(exact) == 1 and exact[0]["write_id"] == 2 and len(exact[0]["data"]) == 8 * mib


@pytest.mark.parametrize("name", ["report.json", "a.b.c", "ünïcode.txt", "x" * 255, ".hidden"])
def test_good_filenames(name: str) -> None:
    assert check_filename(name) == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "a\\b", ".", "..", "a..b", "x\x00", "x\x1f", "x\x7f", "x\x85", "r.meta.json", "x" * 256]
)
def test_bad_filenames(name: str) -> None:
    with pytest.raises(StorageFilenameError):
        check_filename(name)
