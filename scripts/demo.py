"""`make demo`: serve the bundled shop on 127.0.0.1, crawl it with Quarry, read the items back."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "site"
STORAGE = ROOT / "quarry-data"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    print(f"demo: serving {SITE.relative_to(ROOT)} at {url}")
    cmd = [
        sys.executable,
        "-m",
        "quarry_core.cli",
        "run",
        str(ROOT / "examples" / "demo" / "crawl.py"),
        "--job",
        json.dumps({"url": url}),
        "--source",
        "stone-shop",
        "--storage-path",
        str(STORAGE),
    ]
    print('demo: $ quarry run examples/demo/crawl.py --job \'{"url": "' + url + "\"}' --source stone-shop")
    code = subprocess.call(cmd, cwd=ROOT)
    server.shutdown()
    if code != 0:
        print(f"demo: quarry run exited {code}", file=sys.stderr)
        return code
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    events = ds.dataset(STORAGE / "datasets" / "quarry" / "events", format="parquet", partitioning="hive")
    table = events.to_table(filter=(pc.field("source") == "stone-shop") & (pc.field("event_type") == "item"))
    print(f"\ndemo: {table.num_rows} item rows stored under {STORAGE}/datasets/quarry/events (all demo runs)")
    for row in table.slice(max(0, table.num_rows - 12)).to_pylist():
        data = json.loads(row["payload"])["data"]
        print(f"  {data['sku']}  {data['name']:<22} {data['price']:>7.2f} {data['currency']}  {data['stock']}")
    print("\nRead it yourself:")
    print(
        '  python -c "import pyarrow.dataset as ds; '
        "print(ds.dataset('quarry-data/datasets/quarry/events', format='parquet', partitioning='hive').to_table())\""
    )
    query = (
        "SELECT source, event_type, count(*) AS n FROM read_parquet("
        "'quarry-data/datasets/quarry/events/**/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
    )
    print(f'  uv run python -c "import duckdb; duckdb.sql(\\"{query}\\").show()"')
    try:
        import duckdb
    except ImportError:
        return 0
    print()
    duckdb.sql(query.replace("quarry-data", str(STORAGE))).show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
