"""Turning ``quarry run`` options into :class:`~quarry_core.runtime.run.RunSettings`, in the validation order
of the CLI contract: the first failure wins, exit 4, nothing executed or written.

Resolution happens once, in :func:`resolve_options`: for every parameter listed in :data:`CONFIG_OPTIONS` the
layers typer default < config file < ``QUARRY_*`` environment < command line are merged by
:func:`quarry_core.config.merge_layers` into ``opts.config``, a typed :class:`~quarry_core.config.ConfigView` of the
whole schema (config-only keys such as ``adapter.headers``, ``events.sinks`` or ``proxies.<pool>`` included).

Adding an option is a local change:

1. ``run_cmd.py``: a typer option with its default and no ``envvar`` (a parameter counts as given only when it is
   on the command line, so defaults stay visible in ``--help``).
2. If it has a config key: one line in :data:`CONFIG_OPTIONS` (``"adapter_url": ConfigOption("adapter.url")``);
   the key must exist in :data:`quarry_core.config.SCHEMA` and its variable in
   :data:`quarry_core.config.ENV_VARS`. Durations and sizes given on the command line are parsed by the key's
   type; repeatable ``K=V`` options become tables (merged per key across layers); ``--no-x`` flags use
   ``invert=True``.
3. Read it in :func:`build_settings` (or a step helper) with ``opts.config.get("adapter.url")`` /
   ``opts.value("adapter_url")``; "CLI only" options with ``opts.cli("name")``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from loguru import logger

from quarry_core.config import ConfigView
from quarry_core.errors import ConfigError, PluginError, QuarryError, UnknownPluginError
from quarry_core.gctuning import freeze_startup, tune_gc
from quarry_core.interfaces import PolicyConfig, StorageConfig
from quarry_core.outcomes import ExitCode
from quarry_core.partitions import partition_value_error
from quarry_core.units import parse_duration, parse_size

__all__ = [
    "CONFIG_OPTIONS",
    "ConfigOption",
    "RunOptions",
    "build_settings",
    "execute",
    "fanout_settings",
    "resolve_options",
]

_POLICY_FLAGS = {
    "flush_mode": "--flush-mode",
    "buffer_events": "--buffer-events",
    "buffer_bytes": "--buffer-bytes",
    "batch_events": "--batch-events",
    "batch_bytes": "--batch-bytes",
    "flush_count": "--flush-count",
    "flush_interval": "--flush-interval",
    "max_flush_retries": "--max-flush-retries",
}


@attrs.frozen
class DryRun:
    """What a dry run needs: the script and where its imports resolve from."""

    script: str
    resolve_from: str | None


@attrs.frozen
class ConfigOption:
    """How one configurable ``quarry run`` option maps onto the configuration (cli.md §4).

    ``key`` is the dotted config key (its type comes from :data:`quarry_core.config.SCHEMA`); ``invert`` is for
    ``--no-x`` flags that set a key to ``false`` (``--no-lode-events`` → ``events.lode_events``).
    """

    key: str
    invert: bool = False


#: ``quarry run`` parameter name (as in :func:`quarry_core.cli.run_cmd.run`) → its config key. The default is the
#: typer default in ``run_cmd.py``; the environment variable comes from :data:`quarry_core.config.ENV_VARS`.
#: Parameters not listed here are "CLI only" (read them with :meth:`RunOptions.cli`).
CONFIG_OPTIONS: dict[str, ConfigOption] = {
    "quiet": ConfigOption("quiet"),
    "source": ConfigOption("source"),
    "category": ConfigOption("category"),
    "timeout": ConfigOption("timeout"),
    "cancel_grace": ConfigOption("cancel_grace"),
    "executor": ConfigOption("executor"),
    "executor_python": ConfigOption("executor_python"),
    "resolve_from": ConfigOption("resolve_from"),
    "browser_ws_endpoint": ConfigOption("browser_ws_endpoint"),
    "no_browser_reuse": ConfigOption("no_browser_reuse"),
    "policy": ConfigOption("policy.name"),
    "flush_mode": ConfigOption("policy.flush_mode"),
    "buffer_events": ConfigOption("policy.buffer_events"),
    "buffer_bytes": ConfigOption("policy.buffer_bytes"),
    "batch_events": ConfigOption("policy.batch_events"),
    "batch_bytes": ConfigOption("policy.batch_bytes"),
    "flush_count": ConfigOption("policy.flush_count"),
    "flush_interval": ConfigOption("policy.flush_interval"),
    "max_flush_retries": ConfigOption("policy.max_flush_retries"),
    "final_flush_timeout": ConfigOption("policy.final_flush_timeout"),
    "storage_backend": ConfigOption("storage.backend"),
    "storage_path": ConfigOption("storage.path"),
    "storage_dataset": ConfigOption("storage.dataset"),
    "storage_codec": ConfigOption("storage.codec"),
    "storage_compression": ConfigOption("storage.compression"),
    "storage_region": ConfigOption("storage.region"),
    "storage_endpoint": ConfigOption("storage.endpoint"),
    "storage_s3_path_style": ConfigOption("storage.s3_path_style"),
    "storage_option": ConfigOption("storage.options"),
    "proxy_pool": ConfigOption("proxy.pool"),
    "proxy_strategy": ConfigOption("proxy.strategy"),
    "proxy_state_store": ConfigOption("proxy.state_store.type"),
    "proxy_state_path": ConfigOption("proxy.state_store.path"),
    "proxy_state_url": ConfigOption("proxy.state_store.url"),
    "proxy_max_rotations": ConfigOption("proxy.max_rotations_per_run"),
    "no_error_snapshot": ConfigOption("error_snapshot", invert=True),
    "log_level": ConfigOption("log.level"),
    "depth": ConfigOption("fanout.depth"),
    "max_runs": ConfigOption("fanout.max_runs"),
    "parallel": ConfigOption("fanout.parallel"),
    "warm_executors": ConfigOption("fanout.warm_executors"),
    "executor_recycle_after": ConfigOption("fanout.executor_recycle_after"),
    # notification adapter and event sinks (cli/adapter_options.py; --event-sink* address list items, read there)
    "adapter": ConfigOption("adapter.type"),
    "adapter_url": ConfigOption("adapter.url"),
    "adapter_header": ConfigOption("adapter.headers"),
    "adapter_timeout": ConfigOption("adapter.timeout"),
    "adapter_retries": ConfigOption("adapter.retries"),
    "adapter_channel": ConfigOption("adapter.channel"),
    "adapter_subject": ConfigOption("adapter.subject"),
    "adapter_region": ConfigOption("adapter.region"),
    "adapter_endpoint": ConfigOption("adapter.endpoint"),
    "adapter_option": ConfigOption("adapter.options"),
    "adapter_outbox": ConfigOption("adapter.outbox"),
    "adapter_notify_children": ConfigOption("adapter.notify_children"),
    "no_lode_events": ConfigOption("events.lode_events", invert=True),
    "log_format": ConfigOption("log.format"),
}

_LOG_VALUES = {"log.level": ("debug", "info", "warning", "error"), "log.format": ("text", "json")}


@attrs.define
class RunOptions:
    """One ``quarry run`` invocation: every parameter as typed (``params``), which ones were given on the command
    line (``given``), the typer defaults (``defaults``) and, after :func:`resolve_options`, the merged
    configuration (``config``, every layer applied) and the config file used (``config_path``)."""

    params: dict[str, Any]
    given: frozenset[str] = frozenset()
    defaults: dict[str, Any] = attrs.field(factory=dict)
    config: ConfigView = attrs.field(factory=ConfigView)
    config_path: Path | None = None

    @classmethod
    def from_context(cls, ctx: Any) -> RunOptions:
        """From the click context of ``quarry run``: a parameter counts as given only from the command line."""
        params = dict(ctx.params)
        given = set()
        for name in params:
            source = ctx.get_parameter_source(name)
            if source is not None and source.name in ("COMMANDLINE", "PROMPT"):
                given.add(name)
        defaults = {p.name: p.default for p in ctx.command.params if p.name and not callable(p.default)}
        return cls(params=params, given=frozenset(given), defaults=defaults)

    @classmethod
    def from_cli(cls, **params: Any) -> RunOptions:
        """For callers without a click context: every non-``None`` keyword counts as given on the command line."""
        return cls(params=params, given=frozenset(k for k, v in params.items() if v is not None))

    def cli(self, name: str) -> Any:
        """A parameter's command-line value (its typer default when not given); for "CLI only" options."""
        return self.params.get(name)

    def value(self, name: str) -> Any:
        """A configurable option's resolved value by parameter name (``opts.value("timeout")`` → seconds)."""
        return self.config.get(CONFIG_OPTIONS[name].key)

    @property
    def script(self) -> Path | None:
        script = self.params.get("script")
        return script if script is not None else self.params.get("script_arg")

    @property
    def both_scripts(self) -> bool:
        return self.params.get("script") is not None and self.params.get("script_arg") is not None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cli_value(name: str, option: ConfigOption, value: Any) -> Any:
    """A command-line (or typer default) value in the configuration's types, with command-line conventions."""
    from quarry_core.config import Kind, Scalar, field_for

    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return None
    if isinstance(value, Path):
        value = str(value)
    field = field_for(option.key)
    kind = field.kind if isinstance(field, Scalar) else None
    flag = _flag(name)
    if kind is Kind.DURATION and isinstance(value, str):
        if isinstance(field, Scalar) and field.negative and value.strip().startswith("-"):
            return -_duration(flag, value.strip()[1:])  # ``-1s`` where the key allows it (a sink's ttl)
        return _duration(flag, value)
    if kind is Kind.SIZE and isinstance(value, str):
        return _size(flag, value)
    if kind in (Kind.STRING_MAP, Kind.OPTIONS) and isinstance(value, (list, tuple)):
        pairs: dict[str, str] = {}
        for item in value:
            key, sep, val = item.partition("=")
            if not sep or not key:
                shown = "<redacted>" if isinstance(field, Scalar) and field.secret else f'"{item}"'
                raise ConfigError(f"invalid {flag} {shown}: expected KEY=VALUE")
            pairs[key] = val
        return pairs or None
    if option.invert and isinstance(value, bool):
        return not value
    return value


def resolve_options(opts: RunOptions, environ: Mapping[str, str] | None = None) -> RunOptions:
    """Apply command line > ``QUARRY_*`` environment > config file > default to every option of
    :data:`CONFIG_OPTIONS` (validation steps 1-3); the result's ``config`` holds every resolved key, including
    config-only ones (``adapter.headers``, ``events.sinks``, ``proxies``). Raises :class:`ConfigError`."""
    from quarry_core.config import env_layer, explicit_config_path, load_config, merge_layers

    env = os.environ if environ is None else environ
    cli_layer: dict[str, Any] = {}
    default_layer: dict[str, Any] = {}
    for name, option in CONFIG_OPTIONS.items():
        if name in opts.given:
            cli_layer[option.key] = _cli_value(name, option, opts.params.get(name))
        elif name in opts.defaults:
            default = _cli_value(name, option, opts.defaults[name])
            if option.invert and default is True:  # a --no-x flag left off: the key keeps its own default
                default = None
            default_layer[option.key] = default
    explicit = explicit_config_path(
        opts.params.get("config"), no_config=bool(opts.params.get("no_config")), environ=env
    )
    config_file = load_config(explicit=explicit, no_config=bool(opts.params.get("no_config")), environ=env)
    env_values = env_layer(env)
    merged = merge_layers(default_layer, config_file, env_values, cli_layer)
    for key, allowed in _LOG_VALUES.items():
        value = merged.get(key)
        if value is not None and value not in allowed:
            raise ConfigError(f"invalid {key} {value!r} (valid: {', '.join(allowed)})")
    return attrs.evolve(opts, config=merged, config_path=config_file.path)


def _describe_json(value: Any) -> str:
    if isinstance(value, list):
        return f"array (length {len(value)})"
    if isinstance(value, str):
        return f'string ("{value}")'
    if isinstance(value, bool):
        return f"boolean ({'true' if value else 'false'})"
    if isinstance(value, (int, float)):
        return f"number ({value})"
    if value is None:
        return "null"
    return type(value).__name__


def _parse_job(opts: RunOptions) -> dict[str, Any]:
    job_text: str | None = opts.cli("job")
    job_json: Path | None = opts.cli("job_json")
    if job_text is not None and job_json is not None:
        raise ConfigError("cannot use both --job and --job-json")
    if job_json is not None:
        path = job_json
        if not path.is_file():
            raise ConfigError(f"job file not found: {path}")
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"malformed JSON in job file {path}: {exc}") from None
    elif job_text is not None:
        try:
            value = json.loads(job_text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"malformed --job JSON: {exc}") from None
    else:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"job must be a JSON object, got {_describe_json(value)}")
    return value


def _duration(flag: str, text: str) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    if value < 0:
        raise ConfigError(f"{flag} must be >= 0")
    return value


def _size(flag: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _new_run_id() -> str:
    import uuid_utils

    return str(uuid_utils.uuid7())


def build_settings(opts: RunOptions, host: Any) -> tuple[Any, Any]:
    """Validate resolved ``opts`` (see :func:`resolve_options`) in contract order; return ``(RunSettings, storage
    plugin record)``, or ``(DryRun, None)``.

    Raises :class:`ConfigError` (or a plugin error, also exit 4) naming the problem and the fix.
    """
    from quarry_core.runtime.proxying import resolve_proxy
    from quarry_core.runtime.run import RunSettings

    cfg = opts.config
    # 5. script
    if opts.both_scripts:
        raise ConfigError("give the script either as SCRIPT or with --script, not both")
    script = opts.script
    if script is None:
        raise ConfigError("missing script: quarry run SCRIPT (or --script PATH)")
    if not script.is_file():
        raise ConfigError(f"script not found: {script}")
    script_abs = str(script.resolve())
    # 6. lineage
    attempt: int = opts.cli("attempt")
    parent_run_id: str | None = opts.cli("parent_run_id")
    if attempt < 1:
        raise ConfigError("--attempt must be >= 1")
    if attempt > 1 and not parent_run_id:
        raise ConfigError("--attempt > 1 requires --parent-run-id")
    if attempt == 1 and parent_run_id:
        raise ConfigError("--parent-run-id must not be set when --attempt is 1")
    # 7. partition values
    source_value = cfg.get("source")
    source: str = source_value if source_value is not None else script.stem
    category: str = cfg.get("category", "default")
    run_id: str = opts.cli("run_id") if opts.cli("run_id") is not None else _new_run_id()
    for key, value in (("source", source), ("category", category), ("run_id", run_id)):
        err = partition_value_error(key, value)
        if err:
            flag = "--run-id" if key == "run_id" else f"--{key}"
            raise ConfigError(f"invalid {flag}: {err}")
    # 8. resolve-from
    resolve_from = None
    if cfg.get("resolve_from") is not None:
        given_dir = Path(cfg.get("resolve_from"))
        if not given_dir.exists():
            raise ConfigError(f"directory does not exist: {given_dir}")
        if not given_dir.is_dir():
            raise ConfigError(f"not a directory: {given_dir}")
        resolve_from = str(given_dir.resolve())
    # 9. dry runs branch off here
    if opts.cli("dry_run"):
        return DryRun(script=script_abs, resolve_from=resolve_from), None
    # 10. policy
    policy_name: str = cfg.get("policy.name", "strict")
    available = host.available("ingestion_policy")
    try:
        policy_rec = host.ingestion_policy(policy_name)
    except UnknownPluginError as exc:
        valid = ", ".join(sorted(available)) or "none installed"
        hint = f"; {exc.hint}" if exc.hint else ""
        raise ConfigError(f'invalid --policy "{policy_name}" (valid: {valid}){hint}') from None
    kwargs: dict[str, Any] = {"name": policy_name}
    for key in (*_POLICY_FLAGS, "final_flush_timeout"):
        if cfg.has(f"policy.{key}"):
            kwargs[key] = cfg.get(f"policy.{key}")
    for key in ("buffer_events", "batch_events", "flush_count", "max_flush_retries"):
        if key in kwargs and kwargs[key] < 0:
            raise ConfigError(f"{_POLICY_FLAGS[key]} must be >= 0")
    policy_config = PolicyConfig(**kwargs)
    record = policy_rec.record
    ignored = [
        flag
        for key, flag in _POLICY_FLAGS.items()
        if key in kwargs and key not in record.option_names and key != "max_flush_retries"
    ]
    if ignored:
        logger.warning("Warning: {} ignored for {} policy", ", ".join(ignored), policy_name)
    if record.validate is not None:
        record.validate(policy_config)
    # 11. job
    job = _parse_job(opts)
    # 12. storage
    options = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in cfg.get("storage.options", {}).items()}
    storage = StorageConfig(
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
    storage_rec = host.storage_backend(storage.backend)
    if storage_rec.record.validate is not None:
        storage_rec.record.validate(storage)
    if storage.path.startswith("memory://"):
        logger.warning("Warning: memory:// storage: data will not outlive this process")
    # 13. durations
    timeout = _non_negative("--timeout", cfg.get("timeout", 0.0))
    cancel_grace = _non_negative("--cancel-grace", cfg.get("cancel_grace", 5.0))
    _non_negative("--final-flush-timeout", policy_config.final_flush_timeout)
    # 14. notification adapter, 15. event sinks
    from quarry_core.cli.adapter_options import adapter_settings, event_sink_settings

    notification = adapter_settings(cfg, host)
    sinks = event_sink_settings(cfg, opts.params, host)
    # 16. fan-out
    fanout_settings(cfg, opts.cli("isolation"))
    # 17. executor
    executor: str = cfg.get("executor", "playwright")
    host.executor(executor)
    executor_python: str | None = cfg.get("executor_python")
    python = executor_python or sys.executable
    if executor_python is not None and not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ConfigError(f"--executor-python is not an executable file: {python}")
    # 18. proxy pools and state store (selection, step 20, happens at run start: runtime/proxying.py)
    proxy = resolve_proxy(
        cfg,
        host,
        legacy_config=opts.cli("proxy_config"),
        sticky_key=opts.cli("proxy_sticky_key"),
        domain=opts.cli("proxy_domain"),
        origin=opts.cli("proxy_origin"),
        job=job,
    )
    # 19. browser endpoint
    endpoint: str | None = cfg.get("browser_ws_endpoint") or None
    if endpoint:
        scheme = endpoint.split("://", 1)[0].lower() if "://" in endpoint else ""
        if scheme not in ("ws", "wss", "http", "https"):
            raise ConfigError(f"invalid --browser-ws-endpoint {endpoint!r}: scheme must be ws, wss, http or https")
    settings = RunSettings(
        script=script_abs,
        run_id=run_id,
        source=source,
        job=job,
        attempt=attempt,
        job_id=opts.cli("job_id"),
        parent_run_id=parent_run_id,
        category=category,
        policy=policy_config,
        storage=storage,
        executor=executor,
        executor_python=python,
        resolve_from=resolve_from,
        timeout=timeout,
        cancel_grace=cancel_grace,
        browser_ws_endpoint=endpoint,
        browser_reuse=not cfg.get("no_browser_reuse", False),
        proxy=proxy,
        capture_frames=_capture_path(opts.cli("capture_frames")),
        error_snapshot=bool(cfg.get("error_snapshot", True)),
        event_sinks=sinks.sinks,
        lode_events=sinks.lode_events,
        lode_delivery=sinks.lode_delivery,
        notification=notification,
    )
    return settings, storage_rec


def _capture_path(value: Any) -> str | None:
    """``--capture-frames FILE``: its directory must exist (the file is created at run start)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise ConfigError(f"--capture-frames: {path} is a directory (give a file name)")
    if not path.resolve().parent.is_dir():
        raise ConfigError(f"--capture-frames: directory does not exist: {path.parent}")
    return str(path.resolve())


def fanout_settings(cfg: ConfigView, isolation_level: str | None = None, *, warn: bool = True) -> Any:
    """Step 16: the resolved ``fanout.*`` keys as :class:`~quarry_core.runtime.fanout.FanoutSettings`, or ``None``
    when ``--depth`` is 0 (enqueue events stay advisory). Raises ``invalid fan-out config: <reason>``."""
    from quarry_core.runtime.fanout import DEFAULT_EXECUTOR_RECYCLE_AFTER, ISOLATION_LEVELS, FanoutSettings

    depth = int(cfg.get("fanout.depth", 0) or 0)
    max_runs = int(cfg.get("fanout.max_runs", 0) or 0)
    parallel = int(cfg.get("fanout.parallel", 1) if cfg.get("fanout.parallel") is not None else 1)
    recycle = cfg.get("fanout.executor_recycle_after")
    recycle_after = DEFAULT_EXECUTOR_RECYCLE_AFTER if recycle is None else int(recycle)
    warm = cfg.get("fanout.warm_executors")
    isolation = str(isolation_level or "context")
    problem = None
    if depth < 0:
        problem = "--depth must be >= 0"
    elif max_runs < 0:
        problem = "--max-runs must be >= 0"
    elif depth > 0 and max_runs == 0:
        problem = "--max-runs is required when --depth > 0 (safety limit on derived runs)"
    elif parallel < 1:
        problem = "--parallel must be >= 1"
    elif recycle_after < 1:
        problem = "--executor-recycle-after must be >= 1"
    elif isolation not in ISOLATION_LEVELS:
        problem = f'--isolation must be one of {", ".join(ISOLATION_LEVELS)}, got "{isolation}"'
    if problem is not None:
        raise ConfigError(f"invalid fan-out config: {problem}")
    if depth == 0:
        if parallel > 1 and warn:
            logger.warning("Warning: --parallel > 1 has no effect without --depth > 0")
        return None
    return FanoutSettings(
        depth=depth,
        max_runs=max_runs,
        parallel=parallel,
        warm_executors=True if warm is None else bool(warm),
        executor_recycle_after=recycle_after,
        isolation=isolation,
    )


def _non_negative(flag: str, value: float) -> float:
    if value < 0:
        raise ConfigError(f"{flag} must be >= 0")
    return float(value)


def execute(opts: RunOptions) -> int:
    """Validate, run, summarise. Returns the process exit code."""
    from quarry_core.cli.logs import enable_library_logs, setup_logging
    from quarry_core.plugins import PluginHost

    report = opts.cli("report")
    if report is not None and report == "":
        sys.stderr.write("Error: --report needs a path or '-'\n")
        return int(ExitCode.USAGE)
    try:
        opts = resolve_options(opts)
    except ConfigError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return int(ExitCode.USAGE)
    setup_logging(opts.config.get("log.level", "info"), opts.config.get("log.format", "text"))
    if opts.config_path is not None:
        logger.debug("config file: {}", opts.config_path)
    try:
        host = PluginHost.build()
        enable_library_logs()  # plugins just imported disabled their loggers
        settings, storage_rec = build_settings(opts, host)
    except (ConfigError, PluginError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return int(ExitCode.USAGE)
    if isinstance(settings, DryRun):
        return _dry_run(settings, opts, host)
    try:
        if storage_rec.record.prepare is not None:
            storage_rec.record.prepare(settings.storage)
    except QuarryError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return int(ExitCode.USAGE)
    except OSError as exc:
        sys.stderr.write(f"Error: cannot create storage path {settings.storage.path}: {exc}\n")
        return int(ExitCode.USAGE)
    # Storage writes run in worker threads (asyncio.to_thread) while the ingest loop reads the pipe: with CPython's
    # default 5 ms switch interval the loop waits up to 5 ms for the GIL after every read (a convoy that made
    # ``buffered`` several times slower than ``streaming``). 1 ms keeps both moving.
    sys.setswitchinterval(0.001)
    tune_gc()
    try:
        return asyncio.run(_execute_async(settings, host, opts))
    except (ConfigError, PluginError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return int(ExitCode.USAGE)
    except Exception as exc:  # a bug: keep it apart from run outcomes
        logger.opt(exception=exc).error("internal error: {}", exc)
        sys.stderr.write(f"Error: internal error: {type(exc).__name__}: {exc}\n")
        return int(ExitCode.INTERNAL)


async def _execute_async(settings: Any, host: Any, opts: RunOptions) -> int:
    import signal

    from quarry_core.cli.summary import print_summary, write_report
    from quarry_core.runtime.control import RunControl
    from quarry_core.runtime.fanout import execute_crawl
    from quarry_core.runtime.notifications import notify_after_run
    from quarry_core.runtime.run import execute_run

    # A file-size limit (ulimit -f) must surface as a storage error (EFBIG), not kill the runtime.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    control = RunControl()
    loop = asyncio.get_running_loop()
    control.install(loop)
    freeze_startup()  # everything is imported and configured: full collections skip it from here
    try:
        # validated in build_settings (step 16)
        fanout = fanout_settings(opts.config, opts.cli("isolation"), warn=False)
        if fanout is not None:
            from quarry_core.cli.progress import ProgressPrinter

            report = await execute_crawl(settings, host, control, fanout, on_progress=ProgressPrinter(sys.stderr))
        else:
            report = await execute_run(settings, host, control)
        # 14. notification: after the run is persisted, before report and summary; never changes the exit code
        await notify_after_run(report, control, host)
    finally:
        control.uninstall(loop)
    exit_code = control.exit_code if control.exit_code is not None else report.exit_code
    report_path = opts.cli("report")
    if report_path is not None and not control.killed.is_set():
        write_report(report, report_path, exit_code)
    if not opts.value("quiet"):
        print_summary(report)
    return exit_code


def _dry_run(dry: DryRun, opts: RunOptions, host: Any) -> int:
    """Validate the script in the executor (``--validate``): no browser, nothing written.

    Exit 0 valid, 1 invalid, 2 executor not startable.
    """
    from quarry_core.cli.common import ExecutorQueryError, query_executor
    from quarry_core.interfaces import ExecutorConfig

    python = opts.value("executor_python") or sys.executable
    executor = opts.value("executor") or "playwright"
    err = sys.stderr
    err.write("Dry-run validation:\n")
    err.write(f"  script: {dry.script}\n  executor: {executor}\n")
    err.write(f"  resolve-from: {dry.resolve_from or '-'}\n")
    try:
        launcher = host.executor(executor).record.factory(ExecutorConfig(python=python, resolve_from=dry.resolve_from))
        result = query_executor(launcher, ["--validate", dry.script])
    except (ExecutorQueryError, QuarryError) as exc:
        err.write(f"\u2717 Executor failed: {exc}\nValidation failed.\n")
        return 2
    if not result.get("valid"):
        err.write(f"\u2717 Script load failed: {result.get('error', 'unknown error')}\nValidation failed.\n")
        return 1
    hooks = result.get("exports", {}).get("hooks", [])
    err.write("\u2713 Script loaded successfully\n\u2713 run: async function\n")
    err.write(f"\u2713 Hooks: {', '.join(hooks) if hooks else '(none)'}\nValidation passed.\n")
    return 0
