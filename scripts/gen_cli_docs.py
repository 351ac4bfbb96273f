"""Generate ``docs/reference/cli.md`` from the typer app (``quarry_core.cli:app``).

    uv run --frozen python scripts/gen_cli_docs.py           # rewrite the page
    uv run --frozen python scripts/gen_cli_docs.py --check   # exit 1 if the page is out of date

Every built-in command and option is listed with its type, default, config key and environment variable; the JSON
shapes of the read-side commands come from :data:`RESPONSES` (a test runs each command over real stored runs and
checks its keys against this table). ``tests/test_read_cli_docs.py`` fails when the app and the page drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "cli.md"

#: Command path → (JSON shape, notes). The keys are what ``--format json`` prints, in order; ``[…]`` is a list.
RESPONSES: dict[str, tuple[str, str]] = {
    "list runs": (
        "[{run_id, state, outcome, job_id, source, category, started_at, duration_ms}]",
        "Newest first (by `started_at`).",
    ),
    "list jobs": ("[{job_id, state, runs, latest_run_id}]", "Most recently active first; state = the newest run's."),
    "list pools": ("[{name, strategy, endpoint_count}]", "From the configuration file's `proxies` table."),
    "list plugins": ("[{kind, name, distribution, version, summary}]", "Load errors go to stderr."),
    "inspect run": (
        "{run_id, job_id, state, outcome, message, attempt, parent_run_id, spawned_by_run_id, depth, root_run_id, "
        "children, policy, source, category, day, started_at, ended_at, duration_ms, event_count, events, artifacts, "
        "sidecar_files, proxy_used, proxy_rotations, exit_code, error_type, stop_reason, executor, storage_backend, "
        "ipc, retries, lineage}",
        "`children[]`/`retries[]`: `{run_id, attempt, depth, state, outcome, event_count, duration_ms}` of the runs "
        "this one spawned / that retried it. `events{received, persisted, dropped, dropped_by_type, unflushed}`. "
        "`artifacts{total, committed, orphaned, chunks, bytes, orphaned_ids, items[{artifact_id, name, "
        "content_type, size_bytes}]}`. `sidecar_files[{filename, content_type, size, key}]`. `lineage`: the tree from "
        "the first run of the chain, each node `{run_id, relation (root, retry, child), attempt, state, outcome, "
        "children[]}`.",
    ),
    "inspect job": (
        "{job_id, state, latest_run_id, attempts, runs}",
        "`runs[{run_id, attempt, parent_run_id, state, outcome, started_at}]`, oldest attempt first.",
    ),
    "stats runs": (
        "{total, running, succeeded, failed, canceled, by_outcome, events_persisted, events_dropped, "
        "artifacts_committed, sidecar_files}",
        "Runs started in `[--since, --until)`; `by_outcome` maps outcome → runs.",
    ),
    "stats jobs": ("{total, running, succeeded, failed, canceled}", "Each job counted by its newest run's state."),
    "stats metrics": (
        "{record_kind, ts, <every *_total counter>, dropped_by_type, dropped_by_reason, flush_triggers, …, policy, "
        "executor, storage_backend, job_id}",
        "The newest metrics record without partition keys. `--aggregate`: `{runs, <every *_total counter summed>, "
        "dropped_by_type, dropped_by_reason, flush_triggers}`.",
    ),
    "list executors": ("[{name, distribution, summary}]", "Installed executor plugins."),
    "inspect executor": (
        "{name, distribution, version, summary, runs, crashes, launch_failures, last_used_at}",
        "The plugin plus its use in the stored runs.",
    ),
    "stats executors": (
        "[{executor, runs, running, crashes, launch_failures, last_used_at}]",
        "Per executor over the stored runs (same filters as `stats runs`).",
    ),
    "debug ipc": (
        "{transport, encoding, framing, contract_version, run_id, frames_received, bytes_received, decode_errors, "
        "last_error}",
        "From the run record (the newest run without `--run-id`); `--verbose` appends `limits{…}`.",
    ),
    "artifacts list": ("[{artifact_id, name, content_type, size_bytes}]", "Committed artifacts of the run."),
    "files list": ("[{filename, content_type, size, key}]", "Sidecar files of the run."),
}


def _command_tree(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        path = f"{prefix} {name}".strip()
        if hasattr(cmd, "commands"):
            out.extend(_command_tree(cmd, path))
        else:
            out.append((path, cmd))
    return out


def _config_keys() -> tuple[dict[str, str], dict[str, list[str]]]:
    from quarry_core.cli.read_common import CONFIG_KEYS
    from quarry_core.cli.run_options import CONFIG_OPTIONS
    from quarry_core.config import ENV_VARS

    run_keys = {name: opt.key for name, opt in CONFIG_OPTIONS.items()}
    env: dict[str, list[str]] = {}
    for var in ENV_VARS:
        env.setdefault(var.key, []).append(var.name)
    return run_keys | {f"read:{k}": v for k, v in CONFIG_KEYS.items()}, env


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _default(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "off" if not param.default else "on"
    default = param.default
    if default is None or callable(default) or default == () or default == []:
        return "—"
    value = getattr(default, "value", default)
    return f"`{value}`"


def _type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    try:
        text = str(param.bare_type())
    except Exception:
        text = "text"
    return {"str": "text", "list[str]": "text, repeatable"}.get(text, text)


def _option_rows(params: list[Any], keys: dict[str, str], env_by_key: dict[str, list[str]], run: bool) -> list[str]:
    from quarry_core.cli.read_common import SHARED_DEFAULTS

    rows = [
        "| Option | Type | Default | Config key | Environment | Description |",
        "|---|---|---|---|---|---|",
    ]
    for p in params:
        names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
        key = keys.get(p.name) if run else keys.get(f"read:{p.name}")
        envvars = p.envvar if isinstance(p.envvar, (list, tuple)) else ([p.envvar] if p.envvar else [])
        if not envvars and key:
            envvars = env_by_key.get(key, [])
        env = ", ".join(f"`{e}`" for e in envvars) or "—"
        default = f"`{SHARED_DEFAULTS[p.name]}`" if not run and p.name in SHARED_DEFAULTS else _default(p)
        rows.append(
            f"| {names} | {_cell(_type(p))} | {_cell(default)} | {f'`{key}`' if key else '—'} | {env} "
            f"| {_cell(p.help or '')} |"
        )
    return [*rows, ""]


def render() -> str:
    import typer.main

    from quarry_core.cli import app
    from quarry_core.cli.read_common import SHARED_OPTION_NAMES

    root = typer.main.get_command(app)
    keys, env_by_key = _config_keys()
    lines = [
        "# CLI reference",
        "",
        "<!-- Generated by scripts/gen_cli_docs.py from the typer app; do not edit by hand. -->",
        "",
        "Every built-in `quarry` command with its arguments and options: type, default, configuration key and",
        "environment variable (— = none, i.e. command line only). The behaviour is fixed by",
        "[CONTRACT_CLI](../contracts/CONTRACT_CLI.md); commands contributed by plugins (`quarry_cli_commands`) are not",
        "listed. Read-side commands print JSON when stdout is not a terminal (a table on a terminal); the JSON keys",
        "below are stable: new keys are only ever appended.",
        "",
        "Exit codes of every command but `run`: 0 ok; 1 not found (`run not found: <id>`) or read failure",
        "(`no dataset at <path>`); 4 usage or configuration.",
        "",
    ]
    commands = _command_tree(root)
    shared_params: list[Any] = []
    for _, cmd in commands:
        names = [p.name for p in cmd.params]
        if all(n in names for n in SHARED_OPTION_NAMES):
            shared_params = [p for p in cmd.params if p.name in SHARED_OPTION_NAMES]
            break
    if shared_params:
        lines += [
            "## Read-side options",
            "",
            "Every read-side command (`list`, `inspect`, `stats`, `export`, `artifacts`, `files`) takes these, with",
            "the same configuration keys and environment variables as `quarry run`; a command line value beats the",
            "environment, which beats the configuration file. `export`, `artifacts get` and `files get` write a file",
            "instead of printing, so they have no `--format`/`--no-color`/`--tui`. `--tui` is accepted by `inspect`",
            "and `stats` only (elsewhere exit 4).",
            "",
            *_option_rows(shared_params, keys, env_by_key, run=False),
        ]
    for path, cmd in commands:
        lines += [f"## quarry {path}", ""]
        help_text = (cmd.help or "").strip().split("\n\n")[0].replace("\n", " ")
        if help_text:
            lines += [help_text, ""]
        args = [p for p in cmd.params if p.param_type_name == "argument"]
        if args:
            usage = " ".join(
                f"<{(p.metavar or p.name).lower()}>" if p.required else f"[{(p.metavar or p.name).lower()}]"
                for p in args
            )
            lines += [f"Arguments: `{usage}`", ""]
        shared_here = [p for p in cmd.params if path != "run" and p.name in SHARED_OPTION_NAMES]
        opts = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden and p not in shared_here]
        if opts:
            lines += _option_rows(opts, keys, env_by_key, run=path == "run")
        if shared_here:
            listed = ", ".join(f"`{p.opts[0]}`" for p in shared_here)
            lines += [f"[Read-side options](#read-side-options): {listed}.", ""]
        if path in RESPONSES:
            shape, notes = RESPONSES[path]
            lines += [f"JSON: `{shape}`", "", notes, ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            sys.stderr.write(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/gen_cli_docs.py\n")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {PAGE.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
