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
_PROXY = "Proxy"
_FANOUT = "Fan-out"
_NOTIFY = "Notifications and event sinks"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


def run(
    ctx: typer.Context,
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
            help="Source partition (default: the script's file stem).",
            rich_help_panel=_RUN,
        ),
    ] = None,
    category: Annotated[str, typer.Option("--category", help="Category partition.", rich_help_panel=_RUN)] = "default",
    quiet: Annotated[bool, typer.Option("--quiet", help="No stdout summary.", rich_help_panel=_RUN)] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate the script and its hooks; run nothing.", rich_help_panel=_RUN)
    ] = False,
    report: Annotated[
        str | None, typer.Option("--report", help="Write a JSON report to PATH ('-' = stderr).", rich_help_panel=_RUN)
    ] = None,
    no_error_snapshot: Annotated[
        bool,
        typer.Option(
            "--no-error-snapshot",
            help="On script_error, do not save a screenshot and the page HTML as sidecar files.",
            rich_help_panel=_RUN,
        ),
    ] = False,
    capture_frames: Annotated[
        Path | None,
        typer.Option(
            "--capture-frames",
            help="Record the executor's frame stream to FILE (decode with quarry debug decode).",
            rich_help_panel=_RUN,
        ),
    ] = None,
    timeout: Annotated[
        str,
        typer.Option("--timeout", help="Bound each run (0 = none), e.g. 5m.", rich_help_panel=_RUN),
    ] = "0",
    cancel_grace: Annotated[
        str,
        typer.Option(
            "--cancel-grace",
            help="Grace after cancel before the executor is stopped.",
            rich_help_panel=_RUN,
        ),
    ] = "5s",
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="Ingestion policy: strict, buffered, streaming, or a plugin.",
            rich_help_panel=_POLICY,
        ),
    ] = "strict",
    flush_mode: Annotated[
        str | None,
        typer.Option(
            "--flush-mode",
            help="buffered: at_least_once, chunks_first, two_phase.",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    buffer_events: Annotated[
        int | None,
        typer.Option("--buffer-events", help="buffered: event limit.", rich_help_panel=_POLICY),
    ] = None,
    buffer_bytes: Annotated[
        str | None,
        typer.Option(
            "--buffer-bytes",
            help="buffered: byte limit (e.g. 64MiB).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    batch_events: Annotated[
        int | None,
        typer.Option(
            "--batch-events",
            help="buffered: events per batch (default derived).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    batch_bytes: Annotated[
        str | None,
        typer.Option(
            "--batch-bytes",
            help="buffered: bytes per batch (default derived).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    flush_count: Annotated[
        int | None,
        typer.Option(
            "--flush-count",
            help="streaming: flush after N events.",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    flush_interval: Annotated[
        str | None,
        typer.Option(
            "--flush-interval",
            help="streaming: flush every interval (e.g. 250ms).",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    max_flush_retries: Annotated[
        int | None,
        typer.Option(
            "--max-flush-retries",
            help="Write retries before the policy fails.",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    final_flush_timeout: Annotated[
        str,
        typer.Option(
            "--final-flush-timeout",
            help="Bound on the final flush.",
            rich_help_panel=_POLICY,
        ),
    ] = "30s",
    storage_backend: Annotated[
        str,
        typer.Option(
            "--storage-backend",
            help="Storage backend (lode; aliases fs, s3).",
            rich_help_panel=_STORAGE,
        ),
    ] = "lode",
    storage_path: Annotated[
        str,
        typer.Option(
            "--storage-path",
            help="Local directory or fsspec URL.",
            rich_help_panel=_STORAGE,
        ),
    ] = "./quarry-data",
    storage_dataset: Annotated[
        str,
        typer.Option("--storage-dataset", help="Dataset name.", rich_help_panel=_STORAGE),
    ] = "quarry",
    storage_codec: Annotated[
        str,
        typer.Option("--storage-codec", help="parquet or jsonl.", rich_help_panel=_STORAGE),
    ] = "parquet",
    storage_compression: Annotated[
        str | None,
        typer.Option(
            "--storage-compression",
            help="Codec compression (default: zstd for parquet, none for jsonl).",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    storage_region: Annotated[
        str | None,
        typer.Option("--storage-region", help="S3 region.", rich_help_panel=_STORAGE),
    ] = None,
    storage_endpoint: Annotated[
        str | None,
        typer.Option(
            "--storage-endpoint",
            help="S3-compatible endpoint URL.",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    storage_s3_path_style: Annotated[
        bool,
        typer.Option(
            "--storage-s3-path-style",
            help="Path-style S3 addressing.",
            rich_help_panel=_STORAGE,
        ),
    ] = False,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-option",
            help="fsspec option K=V (repeatable).",
            rich_help_panel=_STORAGE,
        ),
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="Executor plugin.", rich_help_panel=_EXEC)] = "playwright",
    executor_python: Annotated[
        str | None,
        typer.Option(
            "--executor-python",
            help="Interpreter for the executor (default: this one).",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    resolve_from: Annotated[
        Path | None,
        typer.Option(
            "--resolve-from",
            help="Directory prepended to the executor's PYTHONPATH.",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    browser_ws_endpoint: Annotated[
        str | None,
        typer.Option(
            "--browser-ws-endpoint",
            help="Attach to this browser (ws://, http://).",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    no_browser_reuse: Annotated[
        bool,
        typer.Option(
            "--no-browser-reuse",
            help="Launch a browser for this invocation instead of sharing the reuse server.",
            rich_help_panel=_EXEC,
        ),
    ] = False,
    proxy_pool: Annotated[
        str | None,
        typer.Option("--proxy-pool", help="Proxy pool (config [proxies.<name>]).", rich_help_panel=_PROXY),
    ] = None,
    proxy_strategy: Annotated[
        str | None,
        typer.Option(
            "--proxy-strategy",
            help="Override the pool's strategy (round_robin, random, sticky).",
            rich_help_panel=_PROXY,
        ),
    ] = None,
    proxy_sticky_key: Annotated[
        str | None, typer.Option("--proxy-sticky-key", help="Explicit sticky key.", rich_help_panel=_PROXY)
    ] = None,
    proxy_domain: Annotated[
        str | None,
        typer.Option(
            "--proxy-domain", help="Domain for sticky scope domain (default: the job's url).", rich_help_panel=_PROXY
        ),
    ] = None,
    proxy_origin: Annotated[
        str | None,
        typer.Option(
            "--proxy-origin", help="Origin for sticky scope origin (default: the job's url).", rich_help_panel=_PROXY
        ),
    ] = None,
    proxy_state_store: Annotated[
        str | None,
        typer.Option(
            "--proxy-state-store", help="Selection state: file (default), memory, redis.", rich_help_panel=_PROXY
        ),
    ] = None,
    proxy_state_path: Annotated[
        str | None,
        typer.Option(
            "--proxy-state-path", help="file store directory (default: XDG state dir).", rich_help_panel=_PROXY
        ),
    ] = None,
    proxy_state_url: Annotated[
        str | None, typer.Option("--proxy-state-url", help="redis store URL.", rich_help_panel=_PROXY)
    ] = None,
    proxy_max_rotations: Annotated[
        int | None,
        typer.Option("--proxy-max-rotations", help="rotate_proxy limit per run (default 100).", rich_help_panel=_PROXY),
    ] = None,
    proxy_config: Annotated[
        Path | None,
        typer.Option(
            "--proxy-config",
            envvar="QUARRY_PROXY_CONFIG",
            help="Deprecated: JSON array of pools (use [proxies] in the config file).",
            rich_help_panel=_PROXY,
        ),
    ] = None,
    depth: Annotated[
        int,
        typer.Option(
            "--depth",
            help="Fan-out depth: enqueue events start child runs (0 = advisory only).",
            rich_help_panel=_FANOUT,
        ),
    ] = 0,
    max_runs: Annotated[
        int,
        typer.Option("--max-runs", help="Most child runs (required when --depth > 0).", rich_help_panel=_FANOUT),
    ] = 0,
    parallel: Annotated[int, typer.Option("--parallel", help="Child runs at once.", rich_help_panel=_FANOUT)] = 1,
    warm_executors: Annotated[
        bool,
        typer.Option(
            "--warm-executors/--no-warm-executors",
            help="Run children in long-lived executor processes.",
            rich_help_panel=_FANOUT,
        ),
    ] = True,
    executor_recycle_after: Annotated[
        int,
        typer.Option("--executor-recycle-after", help="Replace a warm executor after N runs.", rich_help_panel=_FANOUT),
    ] = 200,
    isolation: Annotated[
        str,
        typer.Option(
            "--isolation",
            help="Warm runs: context (a fresh browser context per run) or page (a pooled page, shared state).",
            rich_help_panel=_FANOUT,
        ),
    ] = "context",
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter",
            help="Notify after the run: webhook, redis, nats, a plugin or an [[adapters]] name (repeatable).",
            rich_help_panel=_NOTIFY,
        ),
    ] = None,
    adapter_url: Annotated[
        str | None, typer.Option("--adapter-url", help="Where the adapter publishes.", rich_help_panel=_NOTIFY)
    ] = None,
    adapter_header: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter-header", help="webhook: header K=V (repeatable; values redacted).", rich_help_panel=_NOTIFY
        ),
    ] = None,
    adapter_timeout: Annotated[
        str | None,
        typer.Option(
            "--adapter-timeout",
            help="Bound of the whole publish and each attempt (default 10s).",
            rich_help_panel=_NOTIFY,
        ),
    ] = None,
    adapter_retries: Annotated[
        int | None,
        typer.Option("--adapter-retries", help="Retries after the first attempt (default 3).", rich_help_panel=_NOTIFY),
    ] = None,
    adapter_channel: Annotated[
        str | None,
        typer.Option("--adapter-channel", help="redis: channel (quarry:run_completed).", rich_help_panel=_NOTIFY),
    ] = None,
    adapter_subject: Annotated[
        str | None,
        typer.Option("--adapter-subject", help="nats: subject (quarry.run_completed).", rich_help_panel=_NOTIFY),
    ] = None,
    adapter_region: Annotated[
        str | None, typer.Option("--adapter-region", help="sns: region.", rich_help_panel=_NOTIFY)
    ] = None,
    adapter_endpoint: Annotated[
        str | None, typer.Option("--adapter-endpoint", help="sns: endpoint URL.", rich_help_panel=_NOTIFY)
    ] = None,
    adapter_option: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter-option",
            help="An option the adapter plugin declares, K=V (repeatable), e.g. jetstream=true; NAME.K=V addresses "
            "one of several adapters (NAME.url, NAME.header.H, NAME.timeout, ...).",
            rich_help_panel=_NOTIFY,
        ),
    ] = None,
    adapter_outbox: Annotated[
        bool,
        typer.Option(
            "--adapter-outbox",
            help="Keep an outbox record in Lode so quarry adapter drain can retry (at-least-once).",
            rich_help_panel=_NOTIFY,
        ),
    ] = False,
    adapter_notify_children: Annotated[
        bool,
        typer.Option("--adapter-notify-children", help="Notify for fan-out children too.", rich_help_panel=_NOTIFY),
    ] = False,
    event_sink: Annotated[
        list[str] | None,
        typer.Option(
            "--event-sink",
            help="Event sink besides Lode: redis, lode, or a plugin (repeatable).",
            rich_help_panel=_NOTIFY,
        ),
    ] = None,
    no_lode_events: Annotated[
        bool,
        typer.Option(
            "--no-lode-events", help="Do not write events to Lode (needs a mandatory sink).", rich_help_panel=_NOTIFY
        ),
    ] = False,
    event_sink_lode_delivery: Annotated[
        str | None,
        typer.Option("--event-sink-lode-delivery", help="mandatory or best_effort.", rich_help_panel=_NOTIFY),
    ] = None,
    event_sink_redis_url: Annotated[
        str | None, typer.Option("--event-sink-redis-url", help="redis sink: URL.", rich_help_panel=_NOTIFY)
    ] = None,
    event_sink_redis_stream_key: Annotated[
        str | None,
        typer.Option(
            "--event-sink-redis-stream-key", help="redis sink: stream (quarry:events).", rich_help_panel=_NOTIFY
        ),
    ] = None,
    event_sink_redis_max_len: Annotated[
        int | None,
        typer.Option(
            "--event-sink-redis-max-len", help="redis sink: MAXLEN ~ (100000; -1 none).", rich_help_panel=_NOTIFY
        ),
    ] = None,
    event_sink_redis_ttl: Annotated[
        str | None,
        typer.Option("--event-sink-redis-ttl", help="redis sink: EXPIRE (24h; -1 none).", rich_help_panel=_NOTIFY),
    ] = None,
    event_sink_redis_timeout: Annotated[
        str | None,
        typer.Option("--event-sink-redis-timeout", help="redis sink: per operation (2s).", rich_help_panel=_NOTIFY),
    ] = None,
    event_sink_redis_retries: Annotated[
        int | None,
        typer.Option("--event-sink-redis-retries", help="redis sink: batch retries (2).", rich_help_panel=_NOTIFY),
    ] = None,
    event_sink_redis_delivery: Annotated[
        str | None,
        typer.Option(
            "--event-sink-redis-delivery", help="redis sink: mandatory or best_effort.", rich_help_panel=_NOTIFY
        ),
    ] = None,
    event_sink_option: Annotated[
        list[str] | None,
        typer.Option(
            "--event-sink-option",
            help="An option a sink plugin declares, SINK.K=V (repeatable).",
            rich_help_panel=_NOTIFY,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file (.toml, .yaml, pyproject.toml [tool.quarry]); env QUARRY_CONFIG. "
            "Default: ./quarry.toml, then ./pyproject.toml [tool.quarry].",
            show_default=False,
        ),
    ] = None,
    no_config: Annotated[
        bool, typer.Option("--no-config", help="Ignore QUARRY_CONFIG and skip config file discovery.")
    ] = False,
    log_level: Annotated[LogLevel, typer.Option("--log-level", help="debug, info, warning, error.")] = LogLevel.info,
    log_format: Annotated[LogFormat, typer.Option("--log-format", help="text or json.")] = LogFormat.text,
) -> int:
    """Run a script: execute it in an executor, ingest its events through a policy into storage.

    Options with a config key also come from the config file and QUARRY_* environment variables: command line >
    environment > config file > default.
    """
    # Every parameter arrives in ctx.params; quarry_core.cli.run_options.resolve_options resolves the configurable
    # ones in one place (CONFIG_OPTIONS maps parameter names to config keys).
    from quarry_core.cli.run_options import RunOptions, execute

    return execute(RunOptions.from_context(ctx))
