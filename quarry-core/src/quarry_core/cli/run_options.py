"""Turning ``quarry run`` options into :class:`~quarry_core.runtime.run.RunSettings`, in the validation order
of the CLI contract: the first failure wins, exit 4, nothing executed or written."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs
from loguru import logger

from quarry_core.errors import ConfigError, PluginError, QuarryError, UnknownPluginError
from quarry_core.interfaces import PolicyConfig, StorageConfig
from quarry_core.outcomes import ExitCode
from quarry_core.partitions import partition_value_error
from quarry_core.units import parse_duration, parse_size

__all__ = ["RunOptions", "build_settings", "execute"]

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


@attrs.define
class RunOptions:
    script: Path | None
    both_scripts: bool = False
    job: str | None = None
    job_json: Path | None = None
    run_id: str | None = None
    job_id: str | None = None
    attempt: int = 1
    parent_run_id: str | None = None
    source: str | None = None
    category: str = "default"
    quiet: bool = False
    report: str | None = None
    timeout: str = "0"
    cancel_grace: str = "5s"
    policy: str = "strict"
    flush_mode: str | None = None
    buffer_events: int | None = None
    buffer_bytes: str | None = None
    batch_events: int | None = None
    batch_bytes: str | None = None
    flush_count: int | None = None
    flush_interval: str | None = None
    max_flush_retries: int | None = None
    final_flush_timeout: str = "30s"
    storage_backend: str = "lode"
    storage_path: str = "./quarry-data"
    storage_dataset: str = "quarry"
    storage_codec: str = "parquet"
    storage_compression: str | None = None
    storage_region: str | None = None
    storage_endpoint: str | None = None
    storage_s3_path_style: bool = False
    storage_option: list[str] = attrs.field(factory=list)
    executor: str = "playwright"
    executor_python: str | None = None
    resolve_from: Path | None = None
    browser_ws_endpoint: str | None = None
    dry_run: bool = False


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
    if opts.job is not None and opts.job_json is not None:
        raise ConfigError("cannot use both --job and --job-json")
    if opts.job_json is not None:
        path = opts.job_json
        if not path.is_file():
            raise ConfigError(f"job file not found: {path}")
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"malformed JSON in job file {path}: {exc}") from None
    elif opts.job is not None:
        try:
            value = json.loads(opts.job)
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
    """Validate ``opts`` in contract order; return ``(RunSettings, storage plugin record)``.

    Raises :class:`ConfigError` (or a plugin error, also exit 4) naming the problem and the fix.
    """
    from quarry_core.runtime.run import RunSettings

    # 5. script
    if opts.both_scripts:
        raise ConfigError("give the script either as SCRIPT or with --script, not both")
    if opts.script is None:
        raise ConfigError("missing script: quarry run SCRIPT (or --script PATH)")
    script = opts.script
    if not script.is_file():
        raise ConfigError(f"script not found: {script}")
    script_abs = str(script.resolve())
    # 6. lineage
    if opts.attempt < 1:
        raise ConfigError("--attempt must be >= 1")
    if opts.attempt > 1 and not opts.parent_run_id:
        raise ConfigError("--attempt > 1 requires --parent-run-id")
    if opts.attempt == 1 and opts.parent_run_id:
        raise ConfigError("--parent-run-id must not be set when --attempt is 1")
    # 7. partition values
    source = opts.source if opts.source is not None else script.stem
    run_id = opts.run_id if opts.run_id is not None else _new_run_id()
    for key, value in (("source", source), ("category", opts.category), ("run_id", run_id)):
        err = partition_value_error(key, value)
        if err:
            flag = "--run-id" if key == "run_id" else f"--{key}"
            raise ConfigError(f"invalid {flag}: {err}")
    # 8. resolve-from
    resolve_from = None
    if opts.resolve_from is not None:
        if not opts.resolve_from.exists():
            raise ConfigError(f"directory does not exist: {opts.resolve_from}")
        if not opts.resolve_from.is_dir():
            raise ConfigError(f"not a directory: {opts.resolve_from}")
        resolve_from = str(opts.resolve_from.resolve())
    # 9. dry runs branch off here
    if opts.dry_run:
        return DryRun(script=script_abs, resolve_from=resolve_from), None
    # 10. policy
    available = host.available("ingestion_policy")
    try:
        policy_rec = host.ingestion_policy(opts.policy)
    except UnknownPluginError as exc:
        valid = ", ".join(sorted(available)) or "none installed"
        hint = f"; {exc.hint}" if exc.hint else ""
        raise ConfigError(f'invalid --policy "{opts.policy}" (valid: {valid}){hint}') from None
    kwargs: dict[str, Any] = {"name": opts.policy}
    if opts.flush_mode is not None:
        kwargs["flush_mode"] = opts.flush_mode
    if opts.buffer_events is not None:
        kwargs["buffer_events"] = opts.buffer_events
    if opts.buffer_bytes is not None:
        kwargs["buffer_bytes"] = _size("--buffer-bytes", opts.buffer_bytes)
    if opts.batch_events is not None:
        kwargs["batch_events"] = opts.batch_events
    if opts.batch_bytes is not None:
        kwargs["batch_bytes"] = _size("--batch-bytes", opts.batch_bytes)
    if opts.flush_count is not None:
        kwargs["flush_count"] = opts.flush_count
    if opts.flush_interval is not None:
        kwargs["flush_interval"] = _duration("--flush-interval", opts.flush_interval)
    if opts.max_flush_retries is not None:
        if opts.max_flush_retries < 0:
            raise ConfigError("--max-flush-retries must be >= 0")
        kwargs["max_flush_retries"] = opts.max_flush_retries
    for key in ("buffer_events", "batch_events", "flush_count"):
        if key in kwargs and kwargs[key] < 0:
            raise ConfigError(f"{_POLICY_FLAGS[key]} must be >= 0")
    kwargs["final_flush_timeout"] = _duration("--final-flush-timeout", opts.final_flush_timeout)
    policy_config = PolicyConfig(**kwargs)
    record = policy_rec.record
    ignored = [
        flag
        for key, flag in _POLICY_FLAGS.items()
        if key in kwargs and key not in record.option_names and key != "max_flush_retries"
    ]
    if ignored:
        logger.warning("Warning: {} ignored for {} policy", ", ".join(ignored), opts.policy)
    if record.validate is not None:
        record.validate(policy_config)
    # 11. job
    job = _parse_job(opts)
    # 12. storage
    options: dict[str, str] = {}
    for item in opts.storage_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f'invalid --storage-option "{item}": expected KEY=VALUE')
        options[key] = value
    storage = StorageConfig(
        backend=opts.storage_backend,
        path=opts.storage_path,
        dataset=opts.storage_dataset,
        codec=opts.storage_codec,
        compression=opts.storage_compression,
        region=opts.storage_region,
        endpoint=opts.storage_endpoint,
        s3_path_style=opts.storage_s3_path_style,
        options=options,
    )
    storage_rec = host.storage_backend(opts.storage_backend)
    if storage_rec.record.validate is not None:
        storage_rec.record.validate(storage)
    if storage.path.startswith("memory://"):
        logger.warning("Warning: memory:// storage: data will not outlive this process")
    # 13. durations
    timeout = _duration("--timeout", opts.timeout)
    cancel_grace = _duration("--cancel-grace", opts.cancel_grace)
    # 17. executor
    host.executor(opts.executor)
    python = opts.executor_python or sys.executable
    if opts.executor_python is not None and not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise ConfigError(f"--executor-python is not an executable file: {python}")
    # 19. browser endpoint
    if opts.browser_ws_endpoint:
        scheme = opts.browser_ws_endpoint.split("://", 1)[0].lower() if "://" in opts.browser_ws_endpoint else ""
        if scheme not in ("ws", "wss", "http", "https"):
            raise ConfigError(
                f"invalid --browser-ws-endpoint {opts.browser_ws_endpoint!r}: scheme must be ws, wss, http or https"
            )
    settings = RunSettings(
        script=script_abs,
        run_id=run_id,
        source=source,
        job=job,
        attempt=opts.attempt,
        job_id=opts.job_id,
        parent_run_id=opts.parent_run_id,
        category=opts.category,
        policy=policy_config,
        storage=storage,
        executor=opts.executor,
        executor_python=python,
        resolve_from=resolve_from,
        timeout=timeout,
        cancel_grace=cancel_grace,
        browser_ws_endpoint=opts.browser_ws_endpoint or None,
    )
    return settings, storage_rec


def execute(opts: RunOptions) -> int:
    """Validate, run, summarise. Returns the process exit code."""
    from quarry_core.plugins import PluginHost

    if opts.report is not None and opts.report == "":
        sys.stderr.write("Error: --report needs a path or '-'\n")
        return int(ExitCode.USAGE)
    try:
        host = PluginHost.build()
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
    from quarry_core.runtime.run import execute_run

    # A file-size limit (ulimit -f) must surface as a storage error (EFBIG), not kill the runtime.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    control = RunControl()
    loop = asyncio.get_running_loop()
    control.install(loop)
    try:
        report = await execute_run(settings, host, control)
    finally:
        control.uninstall(loop)
    exit_code = control.exit_code if control.exit_code is not None else report.exit_code
    if opts.report is not None and not control.killed.is_set():
        write_report(report, opts.report, exit_code)
    if not opts.quiet:
        print_summary(report)
    return exit_code


def _dry_run(dry: DryRun, opts: RunOptions, host: Any) -> int:
    """Validate the script in the executor (``--validate``): no browser, nothing written.

    Exit 0 valid, 1 invalid, 2 executor not startable.
    """
    import subprocess

    from quarry_core.interfaces import ExecutorConfig

    python = opts.executor_python or sys.executable
    err = sys.stderr
    err.write("Dry-run validation:\n")
    err.write(f"  script: {dry.script}\n  executor: {opts.executor}\n")
    err.write(f"  resolve-from: {dry.resolve_from or '-'}\n")
    try:
        launcher = host.executor(opts.executor).record.factory(
            ExecutorConfig(python=python, resolve_from=dry.resolve_from)
        )
        cmd = [*launcher.command(False), "--validate", dry.script]
        env = {**os.environ, **launcher.env()}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    except (OSError, subprocess.SubprocessError, QuarryError) as exc:
        err.write(f"\u2717 Executor failed: {exc}\nValidation failed.\n")
        return 2
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        err.write(f"\u2717 Executor failed: exit {proc.returncode}: {tail}\nValidation failed.\n")
        return 2
    if not result.get("valid"):
        err.write(f"\u2717 Script load failed: {result.get('error', 'unknown error')}\nValidation failed.\n")
        return 1
    hooks = result.get("exports", {}).get("hooks", [])
    err.write("\u2713 Script loaded successfully\n\u2713 run: async function\n")
    err.write(f"\u2713 Hooks: {', '.join(hooks) if hooks else '(none)'}\nValidation passed.\n")
    return 0
