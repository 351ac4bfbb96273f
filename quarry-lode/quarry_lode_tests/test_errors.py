from __future__ import annotations

import errno

import pytest

from quarry_core.errors import QuarryError, StorageError
from quarry_lode.errors import (
    STORAGE_ERROR_KINDS,
    ArtifactCorrupt,
    ArtifactNotFound,
    DiskFullError,
    NoMetricsFound,
    PathExistsError,
    PermissionDeniedError,
    classify,
    storage_error,
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (FileExistsError(errno.EEXIST, "File exists"), "path_exists"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), "not_found"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission_denied"),
        (TimeoutError("slow"), "timeout"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk_full"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "network"),
        (ConnectionResetError("reset"), "network"),
    ],
)
def test_type_rules(exc: BaseException, kind: str) -> None:
    err = classify(exc, "write", "/data/x")
    assert err.kind == kind
    assert err.__cause__ is exc


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("An error occurred (AccessDenied) when calling PutObject", "access_denied"),
        ("403 Forbidden", "access_denied"),
        ("open /x: permission denied", "permission_denied"),
        ("EACCES", "permission_denied"),
        ("the path already exists", "path_exists"),
        ("object does not exist", "not_found"),
        ("NoSuchBucket", "not_found"),
        ("HTTP 404", "not_found"),
        ("write failed: no space left on device", "disk_full"),
        ("quota exceeded for bucket", "disk_full"),
        ("operation timed out", "timeout"),
        ("context deadline exceeded", "timeout"),
        ("SlowDown: please reduce your request rate", "throttled"),
        ("HTTP 429 TooManyRequests", "throttled"),
        ("InvalidAccessKeyId", "auth"),
        ("ExpiredToken", "auth"),
        ("401 Unauthorized", "auth"),
        ("connection refused", "network"),
        ("dial tcp 10.0.0.1:9000", "network"),
        ("DNS lookup failed", "network"),
        ("something odd", "unknown"),
    ],
)
def test_message_rules(message: str, kind: str) -> None:
    assert classify(RuntimeError(message), "read", "/p").kind == kind


def test_substring_order_is_upstreams() -> None:
    # "access denied" (rule 1) wins over "not found" (rule 4); "i/o timeout" is a timeout (rule 6 < 9)
    assert classify(RuntimeError("Access Denied: key not found"), "read", "/p").kind == "access_denied"
    assert classify(RuntimeError("read tcp: i/o timeout"), "read", "/p").kind == "timeout"
    # type rules come first: a FileNotFoundError mentioning permission is still not_found
    assert classify(FileNotFoundError("permission denied?"), "read", "/p").kind == "not_found"


def test_str_format_and_hierarchy() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device")
    err = classify(exc, "write", "/data/datasets/quarry/events/part-1.parquet")
    assert isinstance(err, DiskFullError)
    assert isinstance(err, StorageError)
    assert isinstance(err, QuarryError)
    assert (
        str(err) == "write /data/datasets/quarry/events/part-1.parquet: disk_full: [Errno 28] No space left on device"
    )
    assert (err.kind, err.op, err.path) == ("disk_full", "write", "/data/datasets/quarry/events/part-1.parquet")


def test_storage_error_passes_through() -> None:
    err = PathExistsError("write", "/x", "path already exists")
    assert classify(err, "read", "/y") is err
    assert str(err) == "write /x: path_exists: path already exists"


def test_empty_cause_reads_storage_error() -> None:
    assert str(classify(RuntimeError(), "list", "/p")) == "list /p: unknown: storage error"


def test_every_kind_has_a_class() -> None:
    for kind in STORAGE_ERROR_KINDS:
        err = storage_error(kind, "write", "/p", "x")
        assert err.kind == kind
        assert type(err).__name__.endswith("Error")
    assert isinstance(storage_error("permission_denied", "write", "/p"), PermissionDeniedError)


class _ClientError(Exception):
    """Shaped like botocore's ClientError (a ``response`` dict); the name is what classify checks."""

    def __init__(self, code: str) -> None:
        self.response = {"Error": {"Code": code}}
        super().__init__(f"An error occurred ({code})")


def test_client_error_codes() -> None:
    ClientError = type("ClientError", (_ClientError,), {})
    assert classify(ClientError("PreconditionFailed"), "write", "/p").kind == "path_exists"
    assert classify(ClientError("PreconditionFailed"), "write", "/p", precondition="conflict").kind == "conflict"
    assert classify(ClientError("NoSuchKey"), "read", "/p").kind == "not_found"
    assert classify(ClientError("SlowDown"), "write", "/p").kind == "throttled"
    NoCredentialsError = type("NoCredentialsError", (Exception,), {})
    assert classify(NoCredentialsError("Unable to locate"), "write", "/p").kind == "auth"


def test_reader_errors() -> None:
    assert issubclass(ArtifactNotFound, LookupError)
    assert issubclass(ArtifactCorrupt, ValueError)
    assert issubclass(NoMetricsFound, LookupError)
    assert all(issubclass(c, QuarryError) for c in (ArtifactNotFound, ArtifactCorrupt, NoMetricsFound))
