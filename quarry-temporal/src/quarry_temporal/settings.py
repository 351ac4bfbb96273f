"""The worker's configuration and the :class:`~quarry_core.runtime.run.RunSettings` of each activity.

A worker resolves ``quarry run``'s configurable options once (command line > ``QUARRY_*`` environment > config
file > defaults, :func:`quarry_core.cli.run_options.resolve_options`). Every activity then goes through
:func:`quarry_core.cli.run_options.build_settings`, the same validation ``quarry run`` applies, with the
activity's script, job, lineage and partition on top: storage, policy settings, proxies and sinks never cross
Temporal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from quarry_core.cli.run_options import RunOptions, build_settings, resolve_options
from quarry_core.config import merge_layers
from quarry_core.errors import ConfigError
from quarry_core.interfaces import StorageConfig
from quarry_core.plugins import PluginHost
from quarry_core.runtime.run import RunSettings
from quarry_temporal.models import QuarryActivityInput

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TASK_QUEUE",
    "TemporalSettings",
    "WorkerConfig",
    "resolve_temporal",
    "resolve_worker",
    "run_settings",
]

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "quarry"
DEFAULT_MAX_CONCURRENT = 4
DEFAULT_HEARTBEAT_INTERVAL = 30.0


@attrs.frozen
class TemporalSettings:
    """Where the Temporal service is (``[temporal]`` keys; the command line wins)."""

    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_TASK_QUEUE
    max_concurrent_activities: int = DEFAULT_MAX_CONCURRENT
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL


@attrs.frozen
class WorkerConfig:
    """A worker: the Temporal settings and the resolved ``quarry run`` options every activity starts from."""

    temporal: TemporalSettings
    options: RunOptions

    @property
    def storage(self) -> StorageConfig:
        cfg = self.options.config
        options = {
            str(k): v if isinstance(v, str) else json.dumps(v) for k, v in cfg.get("storage.options", {}).items()
        }
        return StorageConfig(
            backend=cfg.get("storage.backend", "lode"),
            path=cfg.get("storage.path", "./quarry-data"),
            dataset=cfg.get("storage.dataset", "quarry"),
            codec=cfg.get("storage.codec", "parquet"),
            compression=cfg.get("storage.compression"),
            region=cfg.get("storage.region"),
            endpoint=cfg.get("storage.endpoint"),
            s3_path_style=bool(cfg.get("storage.s3_path_style", False)),
            options=options,
        )


def resolve_temporal(cfg: Any, given: Mapping[str, Any]) -> TemporalSettings:
    """``[temporal]`` keys of the resolved configuration ``cfg`` overridden by the non-``None`` ``given`` values.

    Raises :class:`ConfigError` for an empty address or task queue, or a count or interval below its minimum.
    """
    values: dict[str, Any] = {}
    for name in attrs.fields_dict(TemporalSettings):
        value = given.get(name)
        if value is None:
            value = cfg.get(f"temporal.{name}")
        if value is not None:
            values[name] = value
    settings = TemporalSettings(**values)
    for name in ("address", "namespace", "task_queue"):
        if not str(getattr(settings, name)).strip():
            raise ConfigError(f"--{name.replace('_', '-')} must not be empty (temporal.{name})")
    if settings.max_concurrent_activities < 1:
        raise ConfigError("--max-concurrent-activities must be >= 1 (temporal.max_concurrent_activities)")
    if settings.heartbeat_interval <= 0:
        raise ConfigError("--heartbeat-interval must be > 0 (temporal.heartbeat_interval)")
    return settings


def resolve_worker(
    params: Mapping[str, Any],
    temporal: Mapping[str, Any],
    host: PluginHost,
    environ: Mapping[str, str] | None = None,
) -> WorkerConfig:
    """Resolve a worker's options: ``params`` are ``quarry run`` parameters given on the command line (storage,
    ``config``, ``no_config``, ``log_level``), ``temporal`` the ``[temporal]`` overrides.

    Checks the run configuration and prepares the storage now, so a bad configuration stops the worker before it
    polls (exit 4).
    """
    opts = resolve_options(RunOptions.from_cli(**params), environ)
    worker = WorkerConfig(temporal=resolve_temporal(opts.config, temporal), options=opts)
    # every run goes through quarry run's validation: try it now with this module standing in for a script, so a
    # bad policy, sink, proxy or executor configuration stops the worker instead of failing every job
    run_settings(worker, QuarryActivityInput(script=__file__, run_id="worker-check", source="worker-check"), host)
    storage = worker.storage
    record = host.storage_backend(storage.backend).record
    if record.validate is not None:
        record.validate(storage)
    if record.prepare is not None:
        try:
            record.prepare(storage)
        except OSError as exc:
            raise ConfigError(f"cannot create storage path {storage.path}: {exc}") from None
    return worker


def run_settings(worker: WorkerConfig, inp: QuarryActivityInput, host: PluginHost) -> RunSettings:
    """The :class:`RunSettings` of one activity: ``quarry run``'s validation with the activity's fields on top of
    the worker's options, without frame capture. ``notification`` stays set when the worker configures an adapter:
    the activity then returns the ``RunCompletedEvent`` and the workflow publishes it through ``quarry.notify``.

    Raises :class:`ConfigError` (or a plugin error) naming the problem, like ``quarry run`` does.
    """
    overrides: dict[str, Any] = {"source": inp.source}
    if inp.category is not None:
        overrides["category"] = inp.category
    if inp.policy is not None:
        overrides["policy.name"] = inp.policy
    if inp.timeout_s is not None:
        overrides["timeout"] = float(inp.timeout_s)
    base = worker.options
    params = {
        **base.params,
        "script": Path(inp.script),
        "script_arg": None,
        "job": json.dumps(inp.job),
        "job_json": None,
        "run_id": inp.run_id,
        "attempt": inp.attempt,
        "parent_run_id": inp.parent_run_id,
        "job_id": inp.job_id,
        "dry_run": False,
        "capture_frames": None,
    }
    opts = attrs.evolve(base, params=params, config=merge_layers(base.config, None, None, overrides))
    settings, _ = build_settings(opts, host)
    if not isinstance(settings, RunSettings):  # pragma: no cover - dry_run is forced off above
        raise ConfigError("internal: the worker built a dry run")
    return attrs.evolve(
        settings,
        spawned_by_run_id=inp.spawned_by_run_id,
        depth=inp.depth,
        root_run_id=inp.root_run_id,
        capture_frames=None,
    )
