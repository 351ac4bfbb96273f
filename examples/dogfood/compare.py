"""Run ``crawl.py`` under ``strict`` and under ``buffered`` and compare what each stored.

    python examples/dogfood/compare.py http://127.0.0.1:8000/index.html [--storage ./dogfood-data]
    # serve the bundled site first: python -m http.server -d examples/site 8000

Prints, per policy, the events stored per type and the drops from the metrics record, then whether both runs stored
the same envelopes in the same order (ignoring run ids, event ids, artifact ids, timestamps and the ``policy``
column, and the events ``buffered`` dropped and counted). Exit 0 when they match, 1 when they do not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POLICIES = {
    "strict": ["--policy", "strict"],
    "buffered": ["--policy", "buffered", "--buffer-events", "8", "--batch-events", "4"],
}
IGNORED = {"run_id", "event_id", "ts", "policy", "artifact_id"}


def run(policy: str, url: str, storage: Path) -> str:
    cmd = [sys.executable, "-m", "quarry_core.cli", "run", str(HERE / "crawl.py"), "--source", "dogfood"]
    cmd += ["--job", json.dumps({"url": url}), "--storage-path", str(storage), *POLICIES[policy]]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{policy} run failed (exit {res.returncode}):\n{res.stderr}")
    return res.stdout.split(",", 1)[0].removeprefix("run_id=")


def envelopes(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    ids: dict[str, str] = {}
    out = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        payload = json.loads(row["payload"])
        if "artifact_id" in payload:
            payload["artifact_id"] = ids.setdefault(payload["artifact_id"], f"artifact-{len(ids)}")
        out[row["seq"]] = {**{k: v for k, v in row.items() if k not in IGNORED}, "payload": payload}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--storage", type=Path, default=Path("dogfood-data"))
    args = ap.parse_args()
    from quarry_lode import open_dataset

    stored: dict[str, dict[int, dict[str, Any]]] = {}
    for policy in POLICIES:
        run_id = run(policy, args.url, args.storage)
        ds = open_dataset(str(args.storage))
        rows = ds.read("events", run_id=run_id).to_pylist()
        metrics = ds.latest_metrics(run_id=run_id)
        stored[policy] = envelopes(rows)
        print(f"{policy:<9} run {run_id}: {dict(Counter(r['event_type'] for r in rows))}")
        print(f"{'':<9} dropped {metrics['events_dropped_total']} {metrics['dropped_by_type'] or {}}")
    strict, buffered = stored["strict"], stored["buffered"]
    missing = sorted(set(strict) - set(buffered))
    same = set(buffered) <= set(strict) and all(strict[s] == buffered[s] for s in buffered)
    droppable_only = all(strict[s]["event_type"] in {"log", "enqueue", "rotate_proxy"} for s in missing)
    print(f"missing under buffered (dropped): seqs {missing}")
    print("same envelopes, same order" if same and droppable_only else "DIFFERENT")
    return 0 if same and droppable_only else 1


if __name__ == "__main__":
    sys.exit(main())
