"""Storage settings: where a ``StorageConfig`` points and which codec it asks for (cli.md §6 step 12).

Import-light on purpose (no pyarrow, fsspec only inside functions): the plugin's ``validate`` and
``prepare`` run before any run starts.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import attrs

from quarry_core.errors import ConfigError
from quarry_core.interfaces import StorageConfig
from quarry_lode.layout import DATASET_NAME_RE

__all__ = [
    "CODECS",
    "COMPRESSIONS",
    "Location",
    "default_compression",
    "prepare_storage",
    "resolve_location",
    "validate_codec",
    "validate_storage",
]

CODECS: tuple[str, ...] = ("parquet", "jsonl")
COMPRESSIONS: Mapping[str, tuple[str, ...]] = {
    "parquet": ("zstd", "snappy", "gzip", "none"),
    "jsonl": ("none", "gzip", "zstd"),
}
_LOCAL_SCHEMES = ("file", "local")
_S3_SCHEMES = ("s3", "s3a")


def default_compression(codec: str) -> str:
    """``zstd`` for Parquet, ``none`` for JSONL."""
    return "zstd" if codec == "parquet" else "none"


def validate_codec(codec: str, compression: str | None) -> tuple[str, str]:
    """Return ``(codec, compression)`` with the default filled in; ``ValueError`` for invalid values."""
    if codec not in COMPRESSIONS:
        raise ValueError(f'invalid storage codec "{codec}" (valid: {", ".join(CODECS)})')
    comp = compression if compression else default_compression(codec)
    if comp not in COMPRESSIONS[codec]:
        raise ValueError(
            f'invalid storage compression "{comp}" for codec {codec} (valid: {", ".join(COMPRESSIONS[codec])})'
        )
    return codec, comp


@attrs.frozen
class Location:
    """A resolved storage root.

    ``url`` is what fsspec gets, ``scheme`` is ``""`` for plain local paths, ``local_path`` the absolute
    directory for local roots, ``storage_options`` the fsspec keyword arguments, and
    ``conditional_writes`` whether atomic conditional writes may be used (storage option, default true).
    """

    url: str
    scheme: str
    local_path: str | None
    storage_options: Mapping[str, Any]
    conditional_writes: bool = True


def _option_value(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def resolve_location(config: StorageConfig) -> Location:
    """Resolve ``config.path`` (alias ``s3`` + a scheme-less path = ``s3://<path>``) and its options."""
    path = config.path
    if config.backend == "s3" and "://" not in path:
        path = f"s3://{path}"
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    options: dict[str, Any] = {k: _option_value(v) for k, v in config.options.items()}
    conditional = options.pop("conditional_writes", True) is not False
    local_path = None
    if scheme in ("", *_LOCAL_SCHEMES):
        raw = path.split("://", 1)[1] if scheme else path
        local_path = os.path.abspath(os.path.expanduser(raw))
        url = local_path
    else:
        url = path
    if scheme in _S3_SCHEMES:
        if config.region:
            client_kwargs = dict(options.get("client_kwargs") or {})
            client_kwargs.setdefault("region_name", config.region)
            options["client_kwargs"] = client_kwargs
        if config.endpoint:
            options.setdefault("endpoint_url", config.endpoint)
        if config.s3_path_style:
            config_kwargs = dict(options.get("config_kwargs") or {})
            s3 = dict(config_kwargs.get("s3") or {})
            s3.setdefault("addressing_style", "path")
            config_kwargs["s3"] = s3
            options["config_kwargs"] = config_kwargs
    return Location(
        url=url, scheme=scheme, local_path=local_path, storage_options=options, conditional_writes=conditional
    )


def _check_scheme(scheme: str) -> None:
    from fsspec.registry import known_implementations, registry

    if scheme in registry:
        return
    known = known_implementations.get(scheme)
    if known is None:
        raise ConfigError(f'unsupported storage URL scheme "{scheme}"')
    module = str(known["class"]).split(".", 1)[0]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f'unsupported storage URL scheme "{scheme}": install {module}')


def validate_storage(config: StorageConfig) -> None:
    """Check a storage configuration without touching storage; raise ``ConfigError`` (exit 4)."""
    if not DATASET_NAME_RE.match(config.dataset or ""):
        raise ConfigError(f'invalid storage dataset "{config.dataset}": must match {DATASET_NAME_RE.pattern}')
    try:
        validate_codec(config.codec, config.compression)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not config.path:
        raise ConfigError("storage path must not be empty")
    location = resolve_location(config)
    if location.local_path is not None:
        if os.path.exists(location.local_path) and not os.path.isdir(location.local_path):
            raise ConfigError(f"storage path is not a directory: {config.path}")
        return
    _check_scheme(location.scheme)


def prepare_storage(config: StorageConfig) -> None:
    """Create a missing local storage directory with its parents (after every other check passed)."""
    location = resolve_location(config)
    if location.local_path is None:
        return
    try:
        os.makedirs(location.local_path, exist_ok=True)
    except OSError as exc:
        from quarry_lode.errors import classify

        raise classify(exc, "init", location.local_path) from exc
