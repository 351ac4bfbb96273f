from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from quarry_core.errors import ConfigError, StorageError
from quarry_core.interfaces import RunPartition, StorageConfig
from quarry_core.protocol.frames import ArtifactChunk, Event
from quarry_lode import hooks
from quarry_lode.backend import LodeBackend, LodeRunStorage
from quarry_lode.errors import PermissionDeniedError
from quarry_lode.reader import open_dataset
from quarry_lode.settings import resolve_location

MakeEvent = Callable[..., Event]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def plugin():  # type: ignore[no-untyped-def]
    (registration,) = list(hooks.quarry_storage_backends())
    return registration


def test_registration() -> None:
    reg = plugin()
    assert reg.name == "lode"
    assert reg.aliases == ("fs", "s3")
    assert reg.validate is not None and reg.prepare is not None


def test_hooks_import_is_light() -> None:
    code = "import sys, quarry_lode.hooks; print(any(m.split('.')[0] in ('pyarrow', 'fsspec') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_validate_messages(tmp_path: Path) -> None:
    validate = plugin().validate
    validate(StorageConfig(path=str(tmp_path / "missing")))  # created later by prepare
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=f"^storage path is not a directory: {re.escape(str(a_file))}$"):
        validate(StorageConfig(path=str(a_file)))
    if not _importable("gcsfs"):
        with pytest.raises(ConfigError, match=r'^unsupported storage URL scheme "gs": install gcsfs$'):
            validate(StorageConfig(path="gs://bucket/x"))
    with pytest.raises(ConfigError, match='unsupported storage URL scheme "nosuchscheme"'):
        validate(StorageConfig(path="nosuchscheme://x"))
    with pytest.raises(ConfigError, match="invalid storage dataset"):
        validate(StorageConfig(path=str(tmp_path), dataset="../x"))
    with pytest.raises(ConfigError, match='invalid storage codec "csv"'):
        validate(StorageConfig(path=str(tmp_path), codec="csv"))
    with pytest.raises(ConfigError, match='invalid storage compression "snappy" for codec jsonl'):
        validate(StorageConfig(path=str(tmp_path), codec="jsonl", compression="snappy"))
    validate(StorageConfig(path="memory://x"))
    assert not (tmp_path / "missing").exists()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_prepare_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    plugin().prepare(StorageConfig(path=str(target)))
    assert target.is_dir()


def test_location_resolution(tmp_path: Path) -> None:
    loc = resolve_location(
        StorageConfig(
            backend="s3",
            path="bucket/prefix",
            region="eu-west-1",
            endpoint="http://minio:9000",
            s3_path_style=True,
            options={"anon": "false", "conditional_writes": "false"},
        )
    )
    assert loc.url == "s3://bucket/prefix"
    assert loc.storage_options == {
        "anon": False,
        "client_kwargs": {"region_name": "eu-west-1"},
        "endpoint_url": "http://minio:9000",
        "config_kwargs": {"s3": {"addressing_style": "path"}},
    }
    assert loc.conditional_writes is False
    local = resolve_location(StorageConfig(path=f"file://{tmp_path}"))
    assert local.local_path == str(tmp_path)
    # region/endpoint mean nothing for local roots
    assert resolve_location(StorageConfig(path="./x", region="r")).storage_options == {}


def test_backend_attributes(tmp_path: Path, memory_url: str) -> None:
    b = LodeBackend(StorageConfig(path=str(tmp_path)))
    assert b.protocol == "file"
    assert b.root_url == f"file://{tmp_path}"
    assert b.events_path(RunPartition("shop/eu", "c", "2026-11-25", "r1")) == (
        f"file://{tmp_path}/datasets/quarry/events/source=shop%2Feu/category=c/day=2026-11-25/run_id=r1"
    )
    m = LodeBackend(StorageConfig(path=memory_url))
    assert m.protocol == "memory"
    assert m.root_url == memory_url
    run(b.close())


def test_open_run_rejects_bad_partitions(backend_factory: Callable[..., LodeBackend]) -> None:
    b = backend_factory()
    with pytest.raises(ValueError, match="run_id must not be empty"):
        b.open_run(RunPartition("s", "c", "2026-11-25", ""))
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        b.open_run(RunPartition("s", "c", "today", "r"))


def test_write_events_groups_by_type(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    aid = str(uuid.uuid4())
    events = [
        make_event(3),
        make_event(1),
        make_event(2, "log"),
        make_event(4, "artifact", {"artifact_id": aid, "name": "a.bin", "content_type": "x/y", "size_bytes": 0}),
    ]
    sid = run(rs.write_events(events, policy="buffered"))
    assert sid is not None
    assert run(rs.write_events([], policy="buffered")) is None
    ds = open_dataset(b.root_url)
    (manifest,) = ds.snapshots()
    assert manifest.snapshot_id == sid
    assert sorted(f.partition["event_type"] for f in manifest.files) == ["artifact", "item", "log"]
    assert manifest.metadata == {"run_id": "r1", "writer": "quarry-lode/0.1.0"}
    items = ds.read(event_type="item")
    assert items.column("seq").to_pylist() == [1, 3]  # seq order within a file
    assert set(items.column("policy").to_pylist()) == {"buffered"}
    assert set(items.column("record_kind").to_pylist()) == {"event"}
    art = ds.read(event_type="artifact").to_pylist()[0]
    assert art["record_kind"] == "artifact_event"
    assert (art["artifact_id"], art["name"], art["content_type"], art["size_bytes"]) == (aid, "a.bin", "x/y", 0)
    assert art["type"] == "artifact" and '"artifact_id"' in art["payload"]


def test_events_of_another_run_are_rejected(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    rs = backend_factory().open_run(partition)
    with pytest.raises(ValueError, match="belongs to run 'r2'"):
        run(rs.write_events([make_event(1, run_id="r2")], policy="strict"))


def test_retry_with_same_snapshot_id_is_idempotent(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, make_event: MakeEvent
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    events = [make_event(1)]
    sid = run(rs.write_events(events, policy="strict", snapshot_id="policy-token-1"))
    again = run(rs.write_events(events, policy="strict", snapshot_id="policy-token-1"))
    assert sid == again
    assert open_dataset(b.root_url).read().num_rows == 1


def _block(path: Path) -> None:
    """Make ``path`` impossible to create as a directory by putting a file where a parent must go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("in the way")


def test_chunk_offsets_track_across_calls_and_failures(
    backend_factory: Callable[..., LodeBackend], partition: RunPartition, tmp_path: Path
) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    aid = str(uuid.uuid4())
    run(rs.write_chunks([ArtifactChunk(aid, 1, False, b"abc"), ArtifactChunk(aid, 2, False, b"de")]))
    chunks_dir = Path(b.dataset.layout.base) / "chunks/source=shop%2Feu/category=default/day=2026-11-25/run_id=r1"
    shutil.rmtree(chunks_dir)
    _block(chunks_dir)  # the next write fails
    with pytest.raises(StorageError) as info:
        run(rs.write_chunks([ArtifactChunk(aid, 3, True, b"fgh")], snapshot_id="retry-me"))
    assert str(info.value).startswith("write ")
    chunks_dir.unlink()
    sid = run(rs.write_chunks([ArtifactChunk(aid, 3, True, b"fgh")], snapshot_id="retry-me"))
    assert sid is not None
    rows = open_dataset(b.root_url).read("chunks").to_pylist()
    (row,) = rows  # the first snapshot's file was removed above
    assert (row["seq"], row["offset"], row["length"]) == (3, 5, 3)
    assert row["checksum"] == hashlib.md5(b"fgh").hexdigest() and row["checksum_algo"] == "md5"
    assert row["event_type"] == "artifact"


def test_write_records_one_snapshot(backend_factory: Callable[..., LodeBackend], partition: RunPartition) -> None:
    b = backend_factory()
    rs = b.open_run(partition)
    sid = run(
        rs.write_records(
            {
                "runs": [{"run_id": "r1", "state": "succeeded", "updated_at": "2026-11-25T10:00:00.000Z"}],
                "metrics": [
                    {
                        "ts": "2026-11-25T10:00:00Z",
                        "policy": "strict",
                        "executor": "playwright",
                        "storage_backend": "file",
                        "runs_started_total": 1,
                    }
                ],
                "outbox": [],
            }
        )
    )
    ds = open_dataset(b.root_url)
    (manifest,) = ds.snapshots()
    assert manifest.snapshot_id == sid
    assert sorted((f.table, f.partition["event_type"]) for f in manifest.files) == [
        ("metrics", "metrics"),
        ("runs", "run"),
    ]
    assert run(rs.write_records({})) is None
    with pytest.raises(ValueError, match="unknown field 'bogus'"):
        run(rs.write_records({"runs": [{"updated_at": "2026-11-25T10:00:00Z", "bogus": 1}]}))
    with pytest.raises(ValueError, match="unknown record table"):
        run(rs.write_records({"events": [{}]}))


def test_outbox_records(backend_factory: Callable[..., LodeBackend], partition: RunPartition) -> None:
    b = backend_factory(codec="jsonl")
    rs = b.open_run(partition)
    record = {
        "notification_id": "n1",
        "state": "pending",
        "adapter": "webhook",
        "target": "https://x",
        "payload": {"event_type": "run_completed"},
        "attempts": 0,
        "created_at": "2026-11-25T10:00:00Z",
        "recorded_at": "2026-11-25T10:00:00Z",
    }
    run(rs.write_records({"outbox": [record]}))
    (row,) = open_dataset(b.root_url).read("outbox").to_pylist()
    assert row["payload"] == '{"event_type":"run_completed"}'
    assert row["event_type"] == "adapter_outbox"


def _make_read_only(root: Path) -> Callable[[], None] | None:
    """Make ``root`` unwritable, for root too when possible: ``chattr +i`` (immutable), else ``chmod 0555``.
    Returns the undo, or ``None`` when neither stops writes here."""
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(root)], capture_output=True).returncode == 0:
        undo: Callable[[], None] = lambda: subprocess.run(["chattr", "-i", str(root)], check=True)  # noqa: E731
    else:
        root.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        undo = lambda: root.chmod(0o755)  # noqa: E731
    probe = root / "probe"
    try:
        probe.write_text("x")
    except OSError:
        return undo
    probe.unlink()
    undo()
    return None


def test_read_only_directory(tmp_path: Path, partition: RunPartition, make_event: MakeEvent) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    b = LodeBackend(StorageConfig(path=str(root)))
    rs: LodeRunStorage = b.open_run(partition)
    undo = _make_read_only(root)
    if undo is None:
        pytest.skip(f"neither chattr +i nor chmod 0o555 stops writes here (euid {os.geteuid()})")
    try:
        with pytest.raises(PermissionDeniedError) as info:
            run(rs.write_events([make_event(1)], policy="strict"))
        err = info.value
        assert err.kind == "permission_denied" and err.op == "write"
        assert str(err).startswith(f"write {root}/datasets/quarry/events/")
        assert isinstance(err.__cause__, PermissionError)
    finally:
        undo()
