"""``quarry-temporal-worker``: a long-running Temporal worker executing Quarry runs (CONTRACT_INTEGRATION §5).

A separate program, since ``quarry`` commands never run indefinitely. Its storage, policy settings, proxies, sinks
and notification adapter come from its own configuration (``--config`` and the storage options of ``quarry run``),
so nothing secret crosses Temporal. SIGINT/SIGTERM stop polling; running runs get ``--shutdown-grace`` to finish,
then are canceled (a ``canceled`` run record; the workflow retries the job as a new run).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from loguru import logger

from quarry_core.errors import ConfigError, PluginError
from quarry_core.outcomes import ExitCode
from quarry_temporal.options import (
    AddressOpt,
    ConfigOpt,
    NamespaceOpt,
    NoConfigOpt,
    StorageBackendOpt,
    StorageCodecOpt,
    StorageCompressionOpt,
    StorageDatasetOpt,
    StorageEndpointOpt,
    StorageOptionOpt,
    StoragePathOpt,
    StoragePathStyleOpt,
    StorageRegionOpt,
    TaskQueueOpt,
    exit_now,
    run_typer,
    storage_params,
)

if TYPE_CHECKING:
    from quarry_core.runtime.notifications import NotificationSettings
    from quarry_temporal.observe import ObservingHost
    from quarry_temporal.settings import WorkerConfig

__all__ = ["app", "main", "serve"]

app = typer.Typer(
    name="quarry-temporal-worker",
    help="Run a Temporal worker that executes Quarry runs (quarry.run) and the Quarry workflows.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
def worker(
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
    address: AddressOpt = None,
    namespace: NamespaceOpt = None,
    task_queue: TaskQueueOpt = None,
    max_concurrent_activities: Annotated[
        int | None,
        typer.Option(
            "--max-concurrent-activities", help="Runs at once on this worker (temporal.max_concurrent_activities; 4)."
        ),
    ] = None,
    heartbeat_interval: Annotated[
        str | None,
        typer.Option("--heartbeat-interval", help="Heartbeat period of a run (temporal.heartbeat_interval; 30s)."),
    ] = None,
    shutdown_grace: Annotated[
        str, typer.Option("--shutdown-grace", help="On SIGINT/SIGTERM, let runs finish this long.")
    ] = "30s",
    identity: Annotated[
        str | None, typer.Option("--identity", help="Worker identity shown in Temporal (pid@host).")
    ] = None,
    storage_backend: StorageBackendOpt = None,
    storage_path: StoragePathOpt = None,
    storage_dataset: StorageDatasetOpt = None,
    storage_codec: StorageCodecOpt = None,
    storage_compression: StorageCompressionOpt = None,
    storage_region: StorageRegionOpt = None,
    storage_endpoint: StorageEndpointOpt = None,
    storage_s3_path_style: StoragePathStyleOpt = None,
    storage_option: StorageOptionOpt = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug, info, warning, error.")] = None,
) -> int:
    """Start a worker on a task queue and run until SIGINT or SIGTERM."""
    from quarry_core.cli.logs import setup_logging
    from quarry_core.units import parse_duration
    from quarry_temporal.observe import ObservingHost
    from quarry_temporal.settings import resolve_worker

    try:
        durations: dict[str, float | None] = {}
        for flag, text in (("--heartbeat-interval", heartbeat_interval), ("--shutdown-grace", shutdown_grace)):
            durations[flag] = None if text is None else _duration(flag, text, parse_duration)
        host = ObservingHost.build()
        assert isinstance(host, ObservingHost)  # build() is a classmethod: it makes an instance of cls
        params: dict[str, Any] = {
            "config": config,
            "no_config": no_config or None,
            "log_level": log_level,
            **storage_params(
                storage_backend=storage_backend,
                storage_path=storage_path,
                storage_dataset=storage_dataset,
                storage_codec=storage_codec,
                storage_compression=storage_compression,
                storage_region=storage_region,
                storage_endpoint=storage_endpoint,
                storage_s3_path_style=storage_s3_path_style,
                storage_option=storage_option,
            ),
        }
        temporal = {
            "address": address,
            "namespace": namespace,
            "task_queue": task_queue,
            "max_concurrent_activities": max_concurrent_activities,
            "heartbeat_interval": durations["--heartbeat-interval"],
        }
        cfg = resolve_worker(params, temporal, host)
        setup_logging(cfg.options.config.get("log.level", "info"), cfg.options.config.get("log.format", "text"))
        from quarry_core.cli.adapter_options import adapter_settings

        notification: NotificationSettings | None = adapter_settings(cfg.options.config, host)
    except (ConfigError, PluginError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return int(ExitCode.USAGE)
    grace = durations["--shutdown-grace"] or 0.0
    code = asyncio.run(serve(cfg, host, notification, shutdown_grace=grace, identity=identity))
    exit_now(code)  # a Temporal client was created: skip interpreter finalization (see exit_now)
    return code


def _duration(flag: str, text: str, parse: Any) -> float:
    try:
        value = float(parse(text))
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    if value < 0:
        raise ConfigError(f"{flag} must be >= 0")
    return value


async def serve(
    cfg: WorkerConfig,
    host: ObservingHost,
    notification: NotificationSettings | None,
    *,
    shutdown_grace: float = 30.0,
    identity: str | None = None,
) -> int:
    """Connect, poll until SIGINT/SIGTERM, shut down gracefully. Returns the exit code (4: cannot connect)."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    from quarry_temporal.activities import QuarryActivities
    from quarry_temporal.workflows import QuarryCrawlWorkflow, QuarryJobWorkflow

    t = cfg.temporal
    who = identity or f"{os.getpid()}@{socket.gethostname()}"
    try:
        client = await Client.connect(t.address, namespace=t.namespace, identity=who)
    except Exception as exc:
        sys.stderr.write(
            f"Error: cannot connect to Temporal at {t.address}: {exc} (start a server or pass --address)\n"
        )
        return int(ExitCode.USAGE)
    activities = QuarryActivities(cfg, host, notification)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(
        client,
        task_queue=t.task_queue,
        workflows=[QuarryJobWorkflow, QuarryCrawlWorkflow],
        activities=[activities.run, activities.notify],
        max_concurrent_activities=t.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=shutdown_grace),
        identity=who,
    )
    async with worker:
        storage = cfg.storage
        logger.info(
            "quarry-temporal-worker {} polling task queue {} at {} (namespace {}); storage {}",
            who,
            t.task_queue,
            t.address,
            t.namespace,
            storage.path,
        )
        sys.stderr.write(f"quarry-temporal-worker ready: {who} task_queue={t.task_queue} address={t.address}\n")
        sys.stderr.flush()
        await stop.wait()
        logger.info("quarry-temporal-worker {}: shutting down (grace {:g}s)", who, shutdown_grace)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``quarry-temporal-worker``); usage errors exit 4."""
    return run_typer(app, "quarry-temporal-worker", argv, sys.exit)
