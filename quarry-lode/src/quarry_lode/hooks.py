"""Entry-point module of quarry-lode (``[project.entry-points.quarry] lode = "quarry_lode.hooks"``).

Imports nothing heavy: pyarrow and fsspec are imported inside the factory and the validators.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from quarry_core import hookimpl
from quarry_core.registrations import CliCommandPlugin, StorageBackendPlugin

if TYPE_CHECKING:
    import typer

    from quarry_core.interfaces import StorageConfig
    from quarry_lode.backend import LodeBackend
    from quarry_lode.reader import LodeDataset

__all__ = [
    "quarry_cli_commands",
    "quarry_storage_backends",
]


def _factory(config: StorageConfig) -> LodeBackend:
    from quarry_lode.backend import shared_backend

    return shared_backend(config)


def _validate(config: StorageConfig) -> None:
    from quarry_lode.settings import validate_storage

    validate_storage(config)


def _prepare(config: StorageConfig) -> None:
    from quarry_lode.settings import prepare_storage

    prepare_storage(config)


def _reader(config: StorageConfig) -> LodeDataset:
    from quarry_lode.reader import open_configured

    return open_configured(config)


@hookimpl
def quarry_storage_backends() -> Iterator[StorageBackendPlugin]:
    """Register the ``lode`` storage backend (aliases ``fs`` and ``s3``)."""
    yield StorageBackendPlugin(
        name="lode",
        aliases=("fs", "s3"),
        factory=_factory,
        summary="Lode snapshots: Hive-partitioned Parquet/JSONL on any fsspec filesystem",
        validate=_validate,
        prepare=_prepare,
        reader=_reader,
    )


def _cli_app() -> typer.Typer:
    from quarry_lode.cli import app

    return app


@hookimpl
def quarry_cli_commands() -> Iterator[CliCommandPlugin]:
    """Mount ``quarry lode`` (``quarry lode gc``: orphan clean-up, dry run by default)."""
    yield CliCommandPlugin(name="lode", factory=_cli_app, summary="Lode storage housekeeping (gc)")
