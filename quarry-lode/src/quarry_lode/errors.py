"""Lode's exceptions and the storage error classification of lode.md §10.

Every class derives from :class:`quarry_core.errors.QuarryError`::

    QuarryError
    ├── StorageError (quarry_core)       "<op> <path>: <kind>: <cause>", cause kept as __cause__
    │   ├── AccessDeniedError            access_denied
    │   ├── AuthError                    auth
    │   ├── ConflictError                conflict (pointer compare-and-swap lost)
    │   ├── DiskFullError                disk_full
    │   ├── NetworkError                 network
    │   ├── NotFoundError                not_found
    │   ├── PathExistsError              path_exists (create-only write of an existing object)
    │   ├── PermissionDeniedError        permission_denied
    │   ├── StorageTimeoutError          timeout
    │   ├── ThrottledError               throttled
    │   └── UnknownStorageError          unknown
    └── LodeError                        reader-side problems
        ├── ArtifactNotFound             (also LookupError) no commit record for an artifact
        ├── ArtifactCorrupt              (also ValueError) chunks that do not reassemble
        └── NoMetricsFound               (also LookupError) no metrics record matches

:func:`classify` turns any exception raised by fsspec, pyarrow or the OS into the matching subclass.
"""

from __future__ import annotations

import errno

from quarry_core.errors import QuarryError, StorageError

__all__ = [
    "STORAGE_ERROR_KINDS",
    "AccessDeniedError",
    "ArtifactCorrupt",
    "ArtifactNotFound",
    "AuthError",
    "ConflictError",
    "DiskFullError",
    "LodeError",
    "NetworkError",
    "NoMetricsFound",
    "NotFoundError",
    "PathExistsError",
    "PermissionDeniedError",
    "StorageTimeoutError",
    "ThrottledError",
    "UnknownStorageError",
    "classify",
    "client_error_code",
    "storage_error",
]

STORAGE_OPS = ("write", "read", "list", "delete", "init")
#: ``ENOSPC``, ``EDQUOT`` and ``EFBIG`` (a file-size limit such as ``ulimit -f``) all mean "no room to write".
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _KindError(StorageError):
    """A :class:`StorageError` whose ``kind`` is fixed by its class."""

    kind = "unknown"

    def __init__(self, op: str, path: str, cause: BaseException | str | None = None) -> None:
        super().__init__(type(self).kind, op, path, cause)


class AccessDeniedError(_KindError):
    """The store refused the request (``AccessDenied``, 403)."""

    kind = "access_denied"


class AuthError(_KindError):
    """Missing, invalid or expired credentials."""

    kind = "auth"


class ConflictError(_KindError):
    """A conditional write lost against a concurrent writer (pointer compare-and-swap)."""

    kind = "conflict"


class DiskFullError(_KindError):
    """No space left on the device, or a quota was exceeded."""

    kind = "disk_full"


class NetworkError(_KindError):
    """The store could not be reached."""

    kind = "network"


class NotFoundError(_KindError):
    """The object, directory or bucket does not exist."""

    kind = "not_found"


class PathExistsError(_KindError):
    """A create-only write found the object already there (e.g. the same sidecar filename twice in a run)."""

    kind = "path_exists"


class PermissionDeniedError(_KindError):
    """The operating system refused access (``EACCES``, read-only directory)."""

    kind = "permission_denied"


class StorageTimeoutError(_KindError):
    """The operation timed out."""

    kind = "timeout"


class ThrottledError(_KindError):
    """The store asked us to slow down (``SlowDown``, 429)."""

    kind = "throttled"


class UnknownStorageError(_KindError):
    """Any storage failure no rule recognises."""

    kind = "unknown"


_CLASSES: dict[str, type[_KindError]] = {
    cls.kind: cls
    for cls in (
        AccessDeniedError,
        AuthError,
        ConflictError,
        DiskFullError,
        NetworkError,
        NotFoundError,
        PathExistsError,
        PermissionDeniedError,
        StorageTimeoutError,
        ThrottledError,
        UnknownStorageError,
    )
}

#: Every storage error kind Lode produces.
STORAGE_ERROR_KINDS: tuple[str, ...] = tuple(sorted(_CLASSES))

#: Message substrings, in upstream's order (lode.md §10 rule 2); compared case-insensitively.
_SUBSTRINGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("access_denied", ("accessdenied", "access denied", "forbidden", "403")),
    ("permission_denied", ("permission denied", "eacces", "read-only file system", "erofs")),
    ("path_exists", ("path already exists", "path exists", "already exists", "file exists", "eexist")),
    ("not_found", ("no such file", "does not exist", "not found", "enoent", "404", "nosuchkey", "nosuchbucket")),
    ("disk_full", ("no space left", "disk full", "enospc", "quota exceeded", "file too large", "efbig")),
    ("timeout", ("timeout", "timed out", "deadline exceeded")),
    ("throttled", ("slowdown", "rate exceeded", "throttl", "429", "toomanyrequests")),
    (
        "auth",
        (
            "nocredentialproviders",
            "credentials",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "expiredtoken",
            "401",
            "unauthorized",
        ),
    ),
    (
        "network",
        ("connection refused", "no route to host", "network unreachable", "dns", "dial tcp", "i/o timeout"),
    ),
)


def storage_error(kind: str, op: str, path: str, cause: BaseException | str | None = None) -> StorageError:
    """Build the subclass for ``kind`` (``UnknownStorageError`` for an unknown kind)."""
    cls = _CLASSES.get(kind, UnknownStorageError)
    err = cls(op, path, cause)
    if isinstance(cause, BaseException):
        err.__cause__ = cause
    return err


def _type_kind(exc: BaseException) -> str | None:
    if isinstance(exc, FileExistsError):
        return "path_exists"
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return "disk_full"
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return "permission_denied"
    if isinstance(exc, ConnectionError):
        return "network"
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoCredentialsError" in names:
        return "auth"
    return None


def client_error_code(exc: BaseException | None) -> tuple[str, int | None] | None:
    """``(error code, HTTP status)`` of a botocore ``ClientError`` (also when wrapped as ``__cause__``,
    as s3fs does), else ``None``."""
    for candidate in (exc, getattr(exc, "__cause__", None)):
        if candidate is None:
            continue
        names = {cls.__name__ for cls in type(candidate).__mro__}
        response = getattr(candidate, "response", None)
        if "ClientError" in names and isinstance(response, dict):
            error = response.get("Error") or {}
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            return str(error.get("Code", "")), status if isinstance(status, int) else None
    return None


def _code_kind(exc: BaseException, precondition: str) -> str | None:
    found = client_error_code(exc)
    if found is None:
        return None
    code, status = found
    if code in ("PreconditionFailed", "412") or status == 412:
        return precondition
    if code == "ConditionalRequestConflict":
        return "conflict"
    return _substring_kind(code) or (_substring_kind(str(status)) if status is not None else None)


def _substring_kind(message: str) -> str | None:
    text = message.lower()
    for kind, needles in _SUBSTRINGS:
        if any(n in text for n in needles):
            return kind
    return None


def classify(exc: BaseException, op: str, path: str, *, precondition: str = "path_exists") -> StorageError:
    """Classify ``exc`` (lode.md §10): type rules first, then message substrings, else ``unknown``.

    A botocore error code (on ``exc`` or on its ``__cause__``: s3fs re-raises ``ClientError`` as ``OSError``
    subclasses) is consulted before the Python type, so S3 ``AccessDenied`` stays ``access_denied`` rather
    than the ``permission_denied`` its translated ``PermissionError`` would give. Beyond the spec's list,
    ``EFBIG`` ("File too large", a file-size limit) counts as ``disk_full`` and ``EROFS`` (read-only file
    system) as ``permission_denied``.

    ``precondition`` is the kind a failed S3 precondition (412) means here: ``path_exists`` for create-only
    writes, ``conflict`` for the pointer. A :class:`StorageError` is returned unchanged. The result keeps
    ``exc`` as ``__cause__``; raise it with ``raise classify(exc, op, path) from exc``.
    """
    if isinstance(exc, StorageError):
        return exc
    kind = _code_kind(exc, precondition) or _type_kind(exc) or _substring_kind(str(exc)) or "unknown"
    return storage_error(kind, op, path, exc)


class LodeError(QuarryError):
    """Base of Lode's reader-side errors."""


class ArtifactNotFound(LodeError, LookupError):
    """No committed ``artifact_event`` row for the artifact (and orphans were not requested)."""


class ArtifactCorrupt(LodeError, ValueError):
    """The artifact's chunks do not reassemble; the message names the first violation."""


class NoMetricsFound(LodeError, LookupError):
    """No committed metrics record matches the filters."""
