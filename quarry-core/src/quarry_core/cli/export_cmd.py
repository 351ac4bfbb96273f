"""``quarry export``: a run's (``--run``) or a source's (``--source`` [``--category``] [``--since``]) items to CSV,
JSON lines or Parquet.

Rows come from committed snapshots in commit order, one per (``run_id``, ``seq``) (flush-mode duplicates
collapse). Every row has ``run_id, source, category, day, seq, event_id, ts, item_type``; JSONL then carries
``data`` as an object, CSV and Parquet flatten it into ``data.<key>[.<key>…]`` columns (lists and mixed-type
values as JSON text). The file is written to a temporary name and renamed, so a failed export leaves nothing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from quarry_core.cli.read_common import ReadContext, ReadFailure, parse_since, read_command
from quarry_core.outcomes import ExitCode

__all__ = ["EXPORT_FORMATS", "export", "flatten", "item_rows"]

EXPORT_FORMATS = ("csv", "jsonl", "parquet")
_BASE = ("run_id", "source", "category", "day", "seq", "event_id", "ts", "item_type")


def item_rows(table: Any, since: Any = None) -> list[dict[str, Any]]:
    """Item rows of an ``events`` table: base columns plus ``data``; deduplicated on (run_id, seq)."""
    seen: set[tuple[str, int]] = set()
    out = []
    for row in table.to_pylist():
        if row.get("record_kind") != "event" or row.get("type") != "item":
            continue
        key = (row["run_id"], row["seq"])
        if key in seen:
            continue
        seen.add(key)
        if since is not None and (row["ts"] is None or row["ts"] < since):
            continue
        payload = json.loads(row["payload"]) if row.get("payload") else {}
        out.append(
            {
                "run_id": row["run_id"],
                "source": row["source"],
                "category": row["category"],
                "day": row["day"],
                "seq": row["seq"],
                "event_id": row["event_id"],
                "ts": row["ts"],
                "item_type": payload.get("item_type"),
                "data": payload.get("data") or {},
            }
        )
    return out


def flatten(value: Mapping[str, Any], prefix: str = "data") -> Iterator[tuple[str, Any]]:
    """``{"a": {"b": 1}, "c": [1]}`` → ``("data.a.b", 1), ("data.c", [1])``; empty objects stay as leaves."""
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if isinstance(item, Mapping) and item:
            yield from flatten(item, name)
        else:
            yield name, item


def _column_type(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "string"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    if all(isinstance(v, str) for v in present):
        return "string"
    return "json"


def _flat_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    import pyarrow as pa

    flat_rows = [dict(flatten(r["data"])) for r in rows]
    data_columns: dict[str, None] = {}
    for fr in flat_rows:
        data_columns.update(dict.fromkeys(fr))
    arrays: dict[str, Any] = {
        "run_id": pa.array([r["run_id"] for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "category": pa.array([r["category"] for r in rows], pa.string()),
        "day": pa.array([r["day"] for r in rows], pa.string()),
        "seq": pa.array([r["seq"] for r in rows], pa.int64()),
        "event_id": pa.array([r["event_id"] for r in rows], pa.string()),
        "ts": pa.array([r["ts"] for r in rows], pa.timestamp("ms", tz="UTC")),
        "item_type": pa.array([r["item_type"] for r in rows], pa.string()),
    }
    for name in data_columns:
        values = [fr.get(name) for fr in flat_rows]
        kind = _column_type(values)
        if kind == "bool":
            arrays[name] = pa.array(values, pa.bool_())
        elif kind == "int":
            arrays[name] = pa.array(values, pa.int64())
        elif kind == "float":
            arrays[name] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif kind == "string":
            arrays[name] = pa.array(values, pa.string())
        else:
            arrays[name] = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in values],
                pa.string(),
            )
    return pa.table(arrays)


def _write(rows: list[dict[str, Any]], fmt: str, out: Any) -> None:
    if fmt == "jsonl":
        from quarry_core.cli.read_common import jsonable

        for r in rows:
            out.write((json.dumps(jsonable(r), ensure_ascii=False, separators=(",", ":")) + "\n").encode())
        return
    table = _flat_table(rows)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)


@read_command("export", output=False)
def export(
    ctx: ReadContext,
    run: Annotated[str | None, typer.Option("--run", help="Export this run's items.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Export this source's items.")] = None,
    category: Annotated[str | None, typer.Option("--category", help="Only this category (with --source).")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only items emitted since: a duration back (2h) or a time/date.")
    ] = None,
    file_format: Annotated[
        str | None,
        typer.Option("--format", "-f", help="csv, jsonl or parquet (default: from the output file's extension)."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Output file ('-' = stdout for csv and jsonl).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")] = False,
) -> int:
    """Export items to CSV, JSON lines or Parquet (data flattened into columns for CSV and Parquet)."""
    if (run is None) == (source is None):
        raise ReadFailure("give exactly one of --run RUN_ID or --source SOURCE", ExitCode.USAGE)
    if run is not None and category is not None:
        raise ReadFailure("--category goes with --source, not --run", ExitCode.USAGE)
    if not output:
        raise ReadFailure("missing --output/-o PATH (the file to write, '-' for stdout)", ExitCode.USAGE)
    fmt = (file_format or "").lower()
    if not fmt:
        suffix = Path(output).suffix.lower().lstrip(".")
        fmt = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl", "parquet": "parquet", "pq": "parquet"}.get(suffix, "")
        if not fmt:
            raise ReadFailure(
                f"cannot tell the export format from {output!r}: pass --format csv, jsonl or parquet", ExitCode.USAGE
            )
    if fmt not in EXPORT_FORMATS:
        raise ReadFailure(f'invalid export format: "{file_format}" (must be csv, jsonl, or parquet)', ExitCode.USAGE)
    if output == "-" and fmt == "parquet":
        raise ReadFailure("parquet cannot be written to stdout: pass -o FILE", ExitCode.USAGE)
    since_dt = parse_since("--since", since)
    target = None if output == "-" else Path(output)
    if target is not None:
        if target.exists() and not force:
            raise ReadFailure(f"output file exists: {target} (use --force to overwrite)", ExitCode.USAGE)
        if not target.parent.is_dir():
            raise ReadFailure(f"output directory does not exist: {target.parent}", ExitCode.USAGE)
    reader = ctx.reader()
    if run is not None and reader.run(run) is None:
        raise ReadFailure(f"run not found: {run}")
    table = reader.read(
        "events",
        source=source,
        category=category,
        run_id=run,
        event_type="item",
        columns=["record_kind", "event_id", "seq", "type", "ts", "payload", "source", "category", "day", "run_id"],
    )
    rows = item_rows(table, since_dt)
    if target is None:
        _write(rows, fmt, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                _write(rows, fmt, fh)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
    sys.stderr.write(f"exported {len(rows)} items to {output} ({fmt})\n")
    return 0
