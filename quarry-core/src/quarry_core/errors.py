"""The one exception tree of Quarry.

Every exception any Quarry distribution raises derives from :class:`QuarryError`::

    QuarryError
    ├── ConfigError                  usage or configuration problem (CLI exit 4)
    ├── PluginError
    │   ├── PluginLoadError          an entry point failed to import or register
    │   ├── PluginConflictError      two distributions registered the same name for one kind
    │   └── UnknownPluginError       a configured name nobody provides
    ├── ProtocolError                anything wrong on the executor <-> runtime wire
    │   ├── FrameDecodeError         bytes that are not a frame (framing, CBOR, tags, non-map)
    │   ├── StreamError              a decodable frame that breaks the contract
    │   └── VersionMismatchError     incompatible contract_version
    ├── ExecutorError
    │   ├── ExecutorLaunchError      the executor process could not be started
    │   ├── ScriptLoadError          the user's script could not be loaded
    │   └── ScriptCrashed            the script host failed outside the script
    ├── StorageError                 (``quarry_lode.errors`` adds one subclass per kind)
    ├── PolicyError                  an ingestion policy gave up
    ├── NotificationError
    └── SDK errors raised inside scripts:
        ├── EmitValidationError      (also a ValueError) bad arguments to ``ctx.emit.*``
        ├── TerminalEventError       emit after the terminal event
        ├── SinkFailedError          the frame channel failed earlier
        ├── StorageFilenameError     (EmitValidationError) a bad ``storage.put`` filename
        ├── StorageSizeError         (EmitValidationError) a ``storage.put`` payload too large
        └── StoragePutError          the runtime rejected one ``storage.put``
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmitValidationError",
    "ExecutorError",
    "ExecutorLaunchError",
    "FrameDecodeError",
    "NotificationError",
    "PluginConflictError",
    "PluginError",
    "PluginLoadError",
    "PolicyError",
    "ProtocolError",
    "QuarryError",
    "ScriptCrashed",
    "ScriptLoadError",
    "SinkFailedError",
    "StorageError",
    "StorageFilenameError",
    "StoragePutError",
    "StorageSizeError",
    "StreamError",
    "TerminalEventError",
    "UnknownPluginError",
    "VersionMismatchError",
]


class QuarryError(Exception):
    """Base of every Quarry exception."""


class ConfigError(QuarryError):
    """A usage or configuration error: the CLI exits 4 and nothing is executed or written."""


class PluginError(QuarryError):
    """Base of plugin discovery and selection errors."""


class PluginLoadError(PluginError):
    """An entry point failed to load or register.

    Recorded as data in ``PluginHost.load_errors``; raised only in strict mode.
    """

    def __init__(self, entry_point: str, distribution: str, version: str, error: BaseException) -> None:
        self.entry_point = entry_point
        self.distribution = distribution
        self.version = version
        self.error = error
        super().__init__(
            f'plugin "{entry_point}" from {distribution} {version} failed to load: {type(error).__name__}: {error}'
        )


class PluginConflictError(PluginError):
    """Two distributions registered the same implementation name for one kind."""

    def __init__(self, kind: str, name: str, distributions: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.distributions = distributions
        super().__init__(f'{kind} "{name}" is registered by more than one distribution: {", ".join(distributions)}')


class UnknownPluginError(PluginError, ConfigError):
    """A configured implementation name that no installed plugin provides."""

    def __init__(self, kind: str, name: str, available: dict[str, str], hint: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.available = available
        self.hint = hint
        listing = ", ".join(f"{n} ({d})" for n, d in sorted(available.items())) or "none installed"
        message = f'unknown {kind} "{name}"; available: {listing}'
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class ProtocolError(QuarryError):
    """Base of wire protocol errors."""


class FrameDecodeError(ProtocolError):
    """Bytes that do not form a frame: bad length, undecodable CBOR, a tag, a non-map or non-text key."""


class StreamError(ProtocolError):
    """A decodable frame that breaks the contract (unknown type, envelope, payload, order, chunk rules)."""


class VersionMismatchError(ProtocolError):
    """An envelope whose ``contract_version`` this runtime cannot accept."""

    def __init__(self, received: str, supported: str) -> None:
        self.received = received
        self.supported = supported
        major, minor, _ = supported.split(".")
        super().__init__(
            f"contract version mismatch: executor sent {received}, runtime supports {major}.{minor} "
            f"(same major, minor <= {minor}). Upgrade quarry-core or install a matching quarry-executor."
        )


class ExecutorError(QuarryError):
    """Base of executor-side failures."""


class ExecutorLaunchError(ExecutorError):
    """The executor process could not be started."""


class ScriptLoadError(ExecutorError):
    """The user's script could not be loaded: ``Failed to load script "<path>": <reason>``."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f'Failed to load script "{path}": {reason}')


class ScriptCrashed(ExecutorError):
    """The script host failed outside the user's code (browser, prepare hook, channel)."""


class StorageError(QuarryError):
    """A storage operation failed.

    ``kind`` is one of the storage error classes of the Lode contract (``disk_full``, ``path_exists``, ...),
    ``op`` one of ``write read list delete init``. ``str()`` is ``"<op> <path>: <kind>: <cause>"``.
    """

    kind: str = "unknown"

    def __init__(self, kind: str, op: str, path: str, cause: BaseException | str | None = None) -> None:
        self.kind = kind
        self.op = op
        self.path = path
        self.cause = cause
        text = str(cause) if cause is not None and str(cause) else "storage error"
        super().__init__(f"{op} {path}: {kind}: {text}")


class PolicyError(QuarryError):
    """An ingestion policy failed; the run ends with outcome ``policy_failure``."""


class NotificationError(QuarryError):
    """A notification adapter failed to publish (never changes a run's exit code)."""


class EmitValidationError(QuarryError, ValueError):
    """Invalid arguments to an emit or storage call; raised before anything is written."""


class TerminalEventError(QuarryError):
    """An emit or storage call after the run's terminal event was written."""


class SinkFailedError(QuarryError):
    """The frame channel failed earlier in this run; ``__cause__`` holds the original error."""


class StorageFilenameError(EmitValidationError):
    """A ``ctx.storage.put`` filename that breaks the rules (empty, separators, ``..``, control characters)."""


class StorageSizeError(EmitValidationError):
    """A ``ctx.storage.put`` payload above 1 GiB or not bytes-like."""


class StoragePutError(QuarryError):
    """The runtime rejected one ``ctx.storage.put``; only that call fails and the run goes on.

    ``kind`` is the storage error class (``path_exists``, ``disk_full``, ...) or ``rejected``.
    """

    def __init__(self, message: str, kind: str = "unknown") -> None:
        self.kind = kind
        super().__init__(message)
