"""``quarry run``: validate in the contract's order (exit 4 on the first failure, nothing executed or
written), execute one run, print the summary and exit with the outcome's code (CONTRACT_CLI, CONTRACT_RUN)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["run"]

_RUN = "Run"
_POLICY = "Policy"
_STORAGE = "Storage"
_EXEC = "Executor"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def run(
    script_arg: Annotated[
        Path | None, typer.Argument(metavar="SCRIPT", help="The script to run.", show_default=False)
    ] = None,
    script: Annotated[
        Path | None, typer.Option("--script", help="The script to run (same as SCRIPT).", rich_help_panel=_RUN)
    ] = None,
    job: Annotated[str | None, typer.Option("--job", help="Job as a JSON object.", rich_help_panel=_RUN)] = None,
    job_json: Annotated[
        Path | None, typer.Option("--job-json", help="File holding one JSON object.", rich_help_panel=_RUN)
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Run id (default: a new UUIDv7).", rich_help_panel=_RUN)
    ] = None,
    job_id: Annotated[
        str | None, typer.Option("--job-id", help="Job id shared by retries.", rich_help_panel=_RUN)
    ] = None,
    attempt: Annotated[
        int, typer.Option("--attempt", help="Attempt number (> 1 needs --parent-run-id).", rich_help_panel=_RUN)
    ] = 1,
    parent_run_id: Annotated[
        str | None, typer.Option("--parent-run-id", help="The run this one retries.", rich_help_panel=_RUN)
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            envvar="QUARRY_SOURCE",
            help="Source partition (default: the script's file stem).",
            rich_help_panel=_RUN,
        ),
    ] = None,
    category: Annotated[
        str, typer.Option("--category", envvar="QUARRY_CATEGORY", help="Category partition.", rich_help_panel=_RUN)
    ] = "default",
    quiet: Annotated[
        bool, typer.Option("--quiet", envvar="QUARRY_QUIET", help="No stdout summary.", rich_help_panel=_RUN)
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate the script and its hooks; run nothing.", rich_help_panel=_RUN)
    ] = False,
    report: Annotated[
        str | None, typer.Option("--report", help="Write a JSON report to PATH ('-' = stderr).", rich_help_panel=_RUN)
    ] = None,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout", envvar="QUARRY_TIMEOUT", help="Bound each run (0 = none), e.g. 5m.", rich_help_panel=_RUN
        ),
    ] = "0",
    cancel_grace: Annotated[
        str,
        typer.Option(
            "--cancel-grace",
            envvar="QUARRY_CANCEL_GRACE",
            help="Grace after cancel before the executor is stopped.",
            rich_help_panel=_RUN,
        ),
    ] = "5s",
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            envvar="QUARRY_POLICY",
            help="Ingestion policy: strict, buffered, streaming, or a plugin.",
            rich_help_panel=_POLICY,
        ),
    ] = "strict",
    flush_mode: Annotated[
        str | None,
        typer.Option(
            "--flush-mode",
            envvar="QUARRY_FLUSH_MODE",
            help="buffered: at_least_once, chunks_first, two_phase.",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    buffer_events: Annotated[
        int | None,
        typer.Option(
            "--buffer-events", envvar="QUARRY_BUFFER_EVENTS", help="buffered: event limit.", rich_help_panel=_POLICY
        ),
    ] = None,
    buffer_bytes: Annotated[
        str | None,
        typer.Option(
            "--buffer-bytes",
            envvar="QUARRY_BUFFER_BYTES",
            help="buffered: byte limit (e.g. 64MiB).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    batch_events: Annotated[
        int | None,
        typer.Option(
            "--batch-events",
            envvar="QUARRY_BATCH_EVENTS",
            help="buffered: events per batch (default derived).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    batch_bytes: Annotated[
        str | None,
        typer.Option(
            "--batch-bytes",
            envvar="QUARRY_BATCH_BYTES",
            help="buffered: bytes per batch (default derived).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    flush_count: Annotated[
        int | None,
        typer.Option(
            "--flush-count",
            envvar="QUARRY_FLUSH_COUNT",
            help="streaming: flush after N events.",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    flush_interval: Annotated[
        str | None,
        typer.Option(
            "--flush-interval",
            envvar="QUARRY_FLUSH_INTERVAL",
            help="streaming: flush every interval (e.g. 250ms).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    max_flush_retries: Annotated[
        int | None,
        typer.Option(
            "--max-flush-retries",
            envvar="QUARRY_MAX_FLUSH_RETRIES",
            help="Write retries before the policy fails.",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    final_flush_timeout: Annotated[
        str,
        typer.Option(
            "--final-flush-timeout",
            envvar="QUARRY_FINAL_FLUSH_TIMEOUT",
            help="Bound on the final flush.",
            rich_help_panel=_POLICY,
        ),
    ] = "30s",
    storage_backend: Annotated[
        str,
        typer.Option(
            "--storage-backend",
            envvar="QUARRY_STORAGE_BACKEND",
            help="Storage backend (lode; aliases fs, s3).",
            rich_help_panel=_STORAGE,
        ),
    ] = "lode",
    storage_path: Annotated[
        str,
        typer.Option(
            "--storage-path",
            envvar="QUARRY_STORAGE_PATH",
            help="Local directory or fsspec URL.",
            rich_help_panel=_STORAGE,
        ),
    ] = "./quarry-data",
    storage_dataset: Annotated[
        str,
        typer.Option(
            "--storage-dataset", envvar="QUARRY_STORAGE_DATASET", help="Dataset name.", rich_help_panel=_STORAGE
        ),
    ] = "quarry",
    storage_codec: Annotated[
        str,
        typer.Option(
            "--storage-codec", envvar="QUARRY_STORAGE_CODEC", help="parquet or jsonl.", rich_help_panel=_STORAGE
        ),
    ] = "parquet",
    storage_compression: Annotated[
        str | None,
        typer.Option(
            "--storage-compression",
            envvar="QUARRY_STORAGE_COMPRESSION",
            help="Codec compression (default: zstd for parquet, none for jsonl).",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    storage_region: Annotated[
        str | None,
        typer.Option("--storage-region", envvar="QUARRY_STORAGE_REGION", help="S3 region.", rich_help_panel=_STORAGE),
    ] = None,
    storage_endpoint: Annotated[
        str | None,
        typer.Option(
            "--storage-endpoint",
            envvar="QUARRY_STORAGE_ENDPOINT",
            help="S3-compatible endpoint URL.",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    storage_s3_path_style: Annotated[
        bool,
        typer.Option(
            "--storage-s3-path-style",
            envvar="QUARRY_STORAGE_S3_PATH_STYLE",
            help="Path-style S3 addressing.",
            rich_help_panel=_STORAGE,
        ),
    ] = False,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-option",
            envvar="QUARRY_STORAGE_OPTION",
            help="fsspec option K=V (repeatable).",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    executor: Annotated[
        str, typer.Option("--executor", envvar="QUARRY_EXECUTOR", help="Executor plugin.", rich_help_panel=_EXEC)
    ] = "playwright",
    executor_python: Annotated[
        str | None,
        typer.Option(
            "--executor-python",
            envvar="QUARRY_EXECUTOR_PYTHON",
            help="Interpreter for the executor (default: this one).",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    resolve_from: Annotated[
        Path | None,
        typer.Option(
            "--resolve-from",
            envvar="QUARRY_RESOLVE_FROM",
            help="Directory prepended to the executor's PYTHONPATH.",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    browser_ws_endpoint: Annotated[
        str | None,
        typer.Option(
            "--browser-ws-endpoint",
            envvar=["QUARRY_BROWSER_WS_ENDPOINT", "QUARRY_BROWSER_ENDPOINT"],
            help="Attach to this browser (ws://, http://).",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", envvar="QUARRY_LOG_LEVEL", help="debug, info, warning, error.")
    ] = LogLevel.info,
    log_format: Annotated[
        LogFormat, typer.Option("--log-format", envvar="QUARRY_LOG_FORMAT", help="text or json.")
    ] = LogFormat.text,
) -> int:
    """Run a script: execute it in an executor, ingest its events through a policy into storage."""
    from quarry_core.cli.logs import setup_logging
    from quarry_core.cli.run_options import RunOptions, execute

    setup_logging(log_level.value, log_format.value)
    opts = RunOptions(
        script=script if script is not None else script_arg,
        both_scripts=script is not None and script_arg is not None,
        job=job,
        job_json=job_json,
        run_id=run_id,
        job_id=job_id,
        attempt=attempt,
        parent_run_id=parent_run_id,
        source=source,
        category=category,
        quiet=quiet,
        report=report,
        timeout=timeout,
        cancel_grace=cancel_grace,
        policy=policy,
        flush_mode=flush_mode,
        buffer_events=buffer_events,
        buffer_bytes=buffer_bytes,
        batch_events=batch_events,
        batch_bytes=batch_bytes,
        flush_count=flush_count,
        flush_interval=flush_interval,
        max_flush_retries=max_flush_retries,
        final_flush_timeout=final_flush_timeout,
        storage_backend=storage_backend,
        storage_path=storage_path,
        storage_dataset=storage_dataset,
        storage_codec=storage_codec,
        storage_compression=storage_compression,
        storage_region=storage_region,
        storage_endpoint=storage_endpoint,
        storage_s3_path_style=storage_s3_path_style,
        storage_option=storage_option or [],
        executor=executor,
        executor_python=executor_python,
        resolve_from=resolve_from,
        browser_ws_endpoint=browser_ws_endpoint,
        dry_run=dry_run,
    )
    return execute(opts)
