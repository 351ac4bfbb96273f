"""S3 through a real moto server on 127.0.0.1: conditional writes (412), the pointer compare-and-swap with
retries that are really counted, and a whole backend round trip read back with pyarrow's own S3 client."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quarry_core.interfaces import RunPartition, StorageConfig
from quarry_core.protocol.frames import Event
from quarry_lode.backend import LodeBackend
from quarry_lode.dataset import Dataset
from quarry_lode.errors import PathExistsError
from quarry_lode.pointer import MAX_RETRIES, pointer_store_for
from quarry_lode.reader import open_configured
from quarry_lode.s3 import S3PointerStore
from quarry_lode.snapshot import new_snapshot_id

BUCKET = "lode-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for key, value in CREDENTIALS.items():
        mp.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client(url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()
    mp.undo()


def client(url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1")


@pytest.fixture(scope="module")
def s3fs_fs(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)


def prefix() -> str:
    return f"{BUCKET}/t-{uuid.uuid4().hex[:12]}"


class Interfering(S3PointerStore):
    """After each of our pointer reads, another writer (a plain boto3 client) puts its own id first, so our
    ``IfMatch`` put meets a changed ETag and moto answers 412."""

    def __init__(self, fs: Any, url: str, ids: list[str]) -> None:
        super().__init__(fs)
        self._client = client(url)
        self._ids = list(ids)
        self.conflicts_caused = 0

    def _sync(self, func: Any, *args: Any) -> Any:
        try:
            return super()._sync(func, *args)  # may raise FileNotFoundError: the pointer is absent
        finally:
            if self._ids:
                bucket, key = args[0], args[1]
                self._client.put_object(Bucket=bucket, Key=key, Body=f"{self._ids.pop(0)}\n".encode())
                self.conflicts_caused += 1


def test_store_is_the_conditional_s3_store(s3fs_fs: Any) -> None:
    store = pointer_store_for(s3fs_fs)
    assert isinstance(store, S3PointerStore) and store.atomic


def test_create_only_is_412_on_the_second_write(endpoint: str, s3fs_fs: Any) -> None:
    store = pointer_store_for(s3fs_fs)
    base = prefix()
    assert store.create_only(f"{base}/m.json", b"first") is True
    assert store.create_only(f"{base}/m.json", b"second") is False
    assert store.create_only(f"{base}/s.bin", io.BytesIO(b"x" * 1000)) is True  # streamed (s3fs open "xb")
    assert store.create_only(f"{base}/s.bin", io.BytesIO(b"y" * 1000)) is False
    c = client(endpoint)
    key = base.split("/", 1)[1]
    assert c.get_object(Bucket=BUCKET, Key=f"{key}/m.json")["Body"].read() == b"first"
    assert c.get_object(Bucket=BUCKET, Key=f"{key}/s.bin")["Body"].read() == b"x" * 1000


def test_large_streamed_sidecar_is_create_only_too(endpoint: str) -> None:
    """Above the multipart threshold s3fs completes the upload with If-None-Match: *; a repeat is path_exists."""
    root = prefix()
    backend = LodeBackend(StorageConfig(path=f"s3://{root}", endpoint=endpoint))
    rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", "r1"))
    size = 12 * 1024 * 1024
    stored = asyncio.run(rs.put_file("big.bin", "application/octet-stream", io.BytesIO(b"a" * size)))
    assert stored.size == size
    with pytest.raises(PathExistsError):
        asyncio.run(rs.put_file("big.bin", "application/octet-stream", io.BytesIO(b"b" * size)))
    body = client(endpoint).get_object(Bucket=BUCKET, Key=f"{root.split('/', 1)[1]}/{stored.key}")["Body"].read()
    assert len(body) == size and body[:1] == b"a" and body[-1:] == b"a"


def test_pointer_is_monotonic(s3fs_fs: Any) -> None:
    store = pointer_store_for(s3fs_fs)
    path = f"{prefix()}/_latest"
    a, b = new_snapshot_id(), new_snapshot_id()
    assert store.read_pointer(path) is None
    first = store.advance(path, b)  # absent: IfNoneMatch="*"
    assert first.advanced and first.retries == 0
    older = store.advance(path, a)
    assert not older.advanced and older.current == b
    assert store.read_pointer(path) == b


def test_conflict_is_retried_and_counted(endpoint: str, s3fs_fs: Any) -> None:
    older = [new_snapshot_id() for _ in range(2)]
    ours = new_snapshot_id()
    store = Interfering(s3fs_fs, endpoint, older)
    path = f"{prefix()}/_latest"
    res = store.advance(path, ours)
    assert store.conflicts_caused == 2
    assert (res.advanced, res.retries, res.exhausted) == (True, 2, False)
    assert store.read_pointer(path) == ours


def test_exhaustion_is_a_warning_and_the_snapshot_stays_committed(
    endpoint: str, s3fs_fs: Any, make_event: Callable[..., Event]
) -> None:
    root = prefix()
    store = Interfering(s3fs_fs, endpoint, [new_snapshot_id() for _ in range(MAX_RETRIES + 1)])
    ds = Dataset(s3fs_fs, root, store=store)
    groups = {("events", _partition("item")): [_row(1)]}
    result = ds.commit(groups, metadata={"run_id": "r1"})
    assert result is not None and result.created
    assert (result.retries, result.pointer_advanced) == (MAX_RETRIES, False)
    assert ds.write_retries == MAX_RETRIES
    assert ds.manifest_exists(result.snapshot_id)
    reader = open_configured(StorageConfig(path=f"s3://{root}", endpoint=endpoint))
    assert [m.snapshot_id for m in reader.snapshots()] == [result.snapshot_id]


def test_retries_reach_the_run_storage_counter(endpoint: str, make_event: Callable[..., Event]) -> None:
    """``LodeRunStorage.write_retries`` is what the runtime reports as ``lode_write_retry_total``."""
    root = prefix()
    backend = LodeBackend(StorageConfig(path=f"s3://{root}", endpoint=endpoint))
    backend.dataset.store = Interfering(backend.fs, endpoint, [new_snapshot_id()])
    rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", "r1"))
    asyncio.run(rs.write_events([make_event(1)], policy="strict"))
    assert backend.dataset.flush_pointer(30)  # the backend advances the pointer after the commit returns
    assert rs.write_retries == 1
    asyncio.run(rs.write_events([make_event(2)], policy="strict"))  # no interference left
    asyncio.run(rs.close())
    assert rs.write_retries == 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.booleans(), max_size=MAX_RETRIES + 2))
def test_cas_retry_property(endpoint: str, s3fs_fs: Any, plan: list[bool]) -> None:
    """Another writer wins the race after each of our reads, with an id older (False) or newer (True) than ours;
    it stops after writing a newer id. Every lost race is one counted retry; a newer id stops us without
    exhaustion; a fourth lost race exhausts the 3 retries with a warning and leaves the pointer to the other writer.
    """
    if True in plan:
        plan = plan[: plan.index(True) + 1]
    older = [new_snapshot_id() for _ in plan]
    ours = new_snapshot_id()
    newer = [new_snapshot_id() for _ in plan]
    theirs = [n if is_newer else o for is_newer, o, n in zip(plan, older, newer, strict=True)]
    store = Interfering(s3fs_fs, endpoint, theirs)
    path = f"{prefix()}/_latest"
    res = store.advance(path, ours)
    final = store.read_pointer(path)
    lost = len(plan)
    if lost > MAX_RETRIES:
        assert (res.advanced, res.exhausted, res.retries) == (False, True, MAX_RETRIES)
        assert final == theirs[MAX_RETRIES]
    elif plan and plan[-1]:
        assert (res.advanced, res.exhausted, res.retries) == (False, False, lost)
        assert final == theirs[-1] and final > ours
    else:
        assert (res.advanced, res.exhausted, res.retries) == (True, False, lost)
        assert final == ours
    assert store.conflicts_caused == min(lost, MAX_RETRIES + 1)


def test_backend_round_trip_read_by_pyarrow_s3(endpoint: str, make_event: Callable[..., Event]) -> None:
    import pyarrow as pa
    import pyarrow.dataset as pads
    from pyarrow import fs as pafs

    root = prefix()
    config = StorageConfig(path=f"s3://{root}", endpoint=endpoint, s3_path_style=True)
    backend = LodeBackend(config)
    assert backend.root_url == f"s3://{root}"
    rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", "r1"))
    events = [make_event(1), make_event(2), make_event(3, "log")]
    sid = asyncio.run(rs.write_events(events, policy="strict"))
    sidecar = asyncio.run(rs.put_file("report.json", "application/json", b'{"ok": true}'))
    with pytest.raises(PathExistsError, match=r"^write s3://.*/report\.json: path_exists"):
        asyncio.run(rs.put_file("report.json", "application/json", b"again"))

    reader = open_configured(config)
    assert reader.latest_snapshot_id() == sid
    assert reader.read("events", source="shop/eu").num_rows == 3
    with reader.open_sidecar(sidecar.key) as f:
        assert f.read() == b'{"ok": true}'

    s3 = pafs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", access_key="testing", secret_key="testing", region="us-east-1"
    )
    keys = ["source", "category", "day", "run_id", "event_type"]
    table = pads.dataset(
        f"{root}/datasets/quarry/events",
        filesystem=s3,
        format="parquet",
        partitioning=pads.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive"),
    ).to_table()
    assert sorted(table.column("event_type").to_pylist()) == ["item", "item", "log"]
    assert set(table.column("source").to_pylist()) == {"shop/eu"}


def _partition(event_type: str) -> Any:
    from quarry_lode.layout import Partition

    return Partition("shop/eu", "default", "2026-11-25", "r1", event_type)


def _row(seq: int) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "record_kind": "event",
        "contract_version": "1.0.0",
        "event_id": f"e{seq}",
        "seq": seq,
        "type": "item",
        "ts": datetime(2026, 11, 25, 10, tzinfo=UTC),
        "payload": "{}",
        "attempt": 1,
        "policy": "strict",
    }


@pytest.fixture(scope="module")
def no_conditional_endpoint(endpoint: str) -> Iterator[str]:
    """An S3-compatible front for the moto server that answers 501 NotImplemented to conditional writes (as some
    S3-compatible stores do) and forwards everything else unchanged."""
    import http.client
    import http.server
    import threading
    from urllib.parse import urlsplit

    target = urlsplit(endpoint)

    class Front(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.command == "PUT" and ("If-None-Match" in self.headers or "If-Match" in self.headers):
                error = b"<Error><Code>NotImplemented</Code><Message>conditional writes</Message></Error>"
                self.send_response(501)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
            conn.request(self.command, self.path, body=body, headers=dict(self.headers))
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _capture_warnings() -> tuple[list[str], int]:
    from loguru import logger

    messages: list[str] = []
    logger.enable("quarry_lode")
    return messages, logger.add(lambda m: messages.append(str(m).strip()), level="WARNING", format="{message}")


def _stop_capture(sink: int) -> None:
    from loguru import logger

    logger.remove(sink)
    logger.disable("quarry_lode")


def test_501_falls_back_to_plain_writes_and_warns_once(
    no_conditional_endpoint: str, make_event: Callable[..., Event]
) -> None:
    from quarry_lode import pointer

    pointer._warned.discard("s3")
    messages, sink = _capture_warnings()
    try:
        root = prefix()
        backend = LodeBackend(StorageConfig(path=f"s3://{root}", endpoint=no_conditional_endpoint))
        rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", "r1"))
        first = asyncio.run(rs.write_events([make_event(1)], policy="strict"))
        second = asyncio.run(rs.write_events([make_event(2)], policy="strict"))
    finally:
        _stop_capture(sink)
    assert backend.dataset.store.atomic is False  # the store noticed the 501 and switched
    reader = open_configured(StorageConfig(path=f"s3://{root}", endpoint=no_conditional_endpoint))
    assert [m.snapshot_id for m in reader.snapshots()] == [second, first]  # newest first
    assert reader.latest_snapshot_id() == second
    assert (
        messages.count(
            "Warning: storage backend s3 does not support conditional writes; latest pointer updates are not atomic"
        )
        == 1
    )


def test_conditional_writes_false_uses_the_generic_store(endpoint: str, make_event: Callable[..., Event]) -> None:
    from quarry_lode.pointer import GenericPointerStore

    root = prefix()
    config = StorageConfig(path=f"s3://{root}", endpoint=endpoint, options={"conditional_writes": "false"})
    backend = LodeBackend(config)
    assert isinstance(backend.dataset.store, GenericPointerStore)
    rs = backend.open_run(RunPartition("shop/eu", "default", "2026-11-25", "r1"))
    sid = asyncio.run(rs.write_events([make_event(1)], policy="strict"))
    assert open_configured(config).latest_snapshot_id() == sid
