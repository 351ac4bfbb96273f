"""Command-line plumbing shared by ``quarry-temporal-worker`` and ``quarry temporal submit``: the storage options
of ``quarry run`` (same names, same config keys) and the Temporal connection options."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "AddressOpt",
    "ConfigOpt",
    "NamespaceOpt",
    "NoConfigOpt",
    "TaskQueueOpt",
    "exit_now",
    "run_typer",
    "storage_params",
]

_STORAGE = "Storage (as quarry run)"
_TEMPORAL = "Temporal"

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="Temporal frontend host:port (temporal.address; 127.0.0.1:7233).", rich_help_panel=_TEMPORAL
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", help="Temporal namespace (temporal.namespace; default).", rich_help_panel=_TEMPORAL),
]
TaskQueueOpt = Annotated[
    str | None,
    typer.Option("--task-queue", help="Task queue (temporal.task_queue; quarry).", rich_help_panel=_TEMPORAL),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (.toml, .yaml, pyproject.toml [tool.quarry]); env QUARRY_CONFIG. "
        "Default: ./quarry.toml, then ./pyproject.toml [tool.quarry].",
        show_default=False,
    ),
]
NoConfigOpt = Annotated[bool, typer.Option("--no-config", help="Ignore QUARRY_CONFIG and skip config discovery.")]

StorageBackendOpt = Annotated[
    str | None,
    typer.Option("--storage-backend", help="Storage backend (lode; aliases fs, s3).", rich_help_panel=_STORAGE),
]
StoragePathOpt = Annotated[
    str | None, typer.Option("--storage-path", help="Local directory or fsspec URL.", rich_help_panel=_STORAGE)
]
StorageDatasetOpt = Annotated[
    str | None, typer.Option("--storage-dataset", help="Dataset name.", rich_help_panel=_STORAGE)
]
StorageCodecOpt = Annotated[
    str | None, typer.Option("--storage-codec", help="parquet or jsonl.", rich_help_panel=_STORAGE)
]
StorageCompressionOpt = Annotated[
    str | None, typer.Option("--storage-compression", help="Codec compression.", rich_help_panel=_STORAGE)
]
StorageRegionOpt = Annotated[str | None, typer.Option("--storage-region", help="S3 region.", rich_help_panel=_STORAGE)]
StorageEndpointOpt = Annotated[
    str | None, typer.Option("--storage-endpoint", help="S3-compatible endpoint URL.", rich_help_panel=_STORAGE)
]
StoragePathStyleOpt = Annotated[
    bool | None,
    typer.Option(
        "--storage-s3-path-style", help="Path-style S3 addressing.", rich_help_panel=_STORAGE, show_default=False
    ),
]
StorageOptionOpt = Annotated[
    list[str] | None, typer.Option("--storage-option", help="fsspec option K=V (repeatable).", rich_help_panel=_STORAGE)
]


def storage_params(
    *,
    storage_backend: str | None,
    storage_path: str | None,
    storage_dataset: str | None,
    storage_codec: str | None,
    storage_compression: str | None,
    storage_region: str | None,
    storage_endpoint: str | None,
    storage_s3_path_style: bool | None,
    storage_option: list[str] | None,
) -> dict[str, Any]:
    """The storage flags as ``quarry run`` parameters (``None`` = not given, so config and environment apply)."""
    return {
        "storage_backend": storage_backend,
        "storage_path": storage_path,
        "storage_dataset": storage_dataset,
        "storage_codec": storage_codec,
        "storage_compression": storage_compression,
        "storage_region": storage_region,
        "storage_endpoint": storage_endpoint,
        "storage_s3_path_style": storage_s3_path_style,
        "storage_option": storage_option or None,
    }


def run_typer(app: typer.Typer, prog_name: str, argv: list[str] | None, on_exit: Callable[[int], Any]) -> int:
    """Run a typer app with click's usage errors mapped to exit 4 (CONTRACT_CLI), like ``quarry`` does."""
    from quarry_core.cli import run_app

    code = run_app(app, prog_name, argv)
    if argv is None:
        on_exit(code)
    return code


def _is_program() -> bool:
    """Whether this process is the ``quarry`` or ``quarry-temporal-worker`` program (not a host embedding it)."""
    if not sys.argv or not sys.argv[0]:
        return False
    path = Path(sys.argv[0])
    return path.name in ("quarry", "quarry-temporal-worker") or path.parts[-3:] == ("quarry_core", "cli", "__main__.py")


def exit_now(code: int) -> None:
    """When this process is the program, end it with ``code`` at once, after flushing stdout and stderr.

    For commands that used a Temporal client: the SDK's Rust runtime keeps native threads that can abort the
    interpreter's finalization of a short-lived process (``Fatal Python error: PyGILState_Release``, SIGABRT;
    temporalio/sdk-python#300), which would replace the command's exit code with -6. Skipping finalization is the
    SDK maintainers' suggested workaround; everything Quarry writes is flushed before this point.
    """
    if not _is_program():
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)
