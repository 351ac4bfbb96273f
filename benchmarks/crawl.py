"""Crawl benchmark: one listing page linking N detail pages on 127.0.0.1, crawled four ways.

    uv run --frozen --group bench python benchmarks/crawl.py [--pages 200] [--concurrency 4] [--repeat 1]

Contenders, each a fresh subprocess timed from start to exit (interpreter, browser launch and all), each with
``--concurrency`` pages at once and the same Chromium binary (``--chromium``):

- ``quarry``: ``quarry run`` with fan-out (``--depth 1 --parallel 4``): the listing run enqueues one child run per
  detail page; children run on warm executors; every item is persisted to Lode (parquet) with run records;
- ``quarry-page``: the same with ``--isolation page`` (a pooled page per executor instead of a fresh context);
- ``playwright``: a bare Playwright script: one browser, one context, ``concurrency`` pages reused by workers;
- ``crawlee``: Crawlee's ``PlaywrightCrawler`` (``max_concurrency`` = ``desired_concurrency`` = concurrency);
- ``scrapy``: a scrapy-playwright spider (``CONCURRENT_REQUESTS`` = concurrency, parsing ``response.css``).

Every contender extracts the same three fields (sku, name, price) from every detail page and must return all N
items, else its result is reported as failed. Crawlee and scrapy-playwright come from the optional ``bench``
dependency group; a contender whose package is missing is reported as skipped.

Quarry runs get a discovery directory of their own (``XDG_RUNTIME_DIR``), so a browser reuse server left by
another invocation is never used and one a run starts is stopped after it; ``--quarry-args "..."`` adds
``quarry run`` arguments to both Quarry contenders (``--policy buffered --buffer-events 1000``, ...).

Output: pages/s per contender (detail pages + the listing, divided by wall time) and Quarry's ratio to each
peer, against the targets (≥ 1.5× Crawlee, ≥ 1.2× scrapy-playwright, ≥ 0.8× bare Playwright). ``--cpu`` also
prints each contender's CPU seconds by process kind (main process, executors, drivers, browsers, renderers).
``--json PATH`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/lib/chromium/chromium-headless-shell"
TARGETS = {"crawlee": 1.5, "scrapy": 1.2, "playwright": 0.8}
LABELS = {
    "quarry": "Quarry fan-out",
    "quarry-page": "Quarry, --isolation page",
    "playwright": "bare Playwright",
    "crawlee": "Crawlee PlaywrightCrawler",
    "scrapy": "scrapy-playwright",
}

# --------------------------------------------------------------------------- the site


def listing_html(pages: int) -> str:
    links = "\n".join(
        f'<li class="product-link"><a href="/items/{i}.html">Stone {i}</a></li>' for i in range(1, pages + 1)
    )
    return f'<!doctype html><html><head><title>Listing</title></head><body><ul id="products">{links}</ul></body></html>'


def detail_html(i: int) -> str:
    return (
        f"<!doctype html><html><head><title>Stone {i}</title></head><body>"
        f'<nav><a href="/index.html">All products</a></nav>'
        f'<article class="product" data-sku="SKU-{i:04d}"><h1 class="name">Stone {i}</h1>'
        f'<p class="price" data-currency="EUR">{10 + i * 0.25:.2f}</p>'
        f'<p class="description">{"Polished stone. " * 20}</p></article></body></html>'
    )


def serve(pages: int) -> None:
    """Serve the site until stdin closes; print the base URL first."""
    listing = listing_html(pages).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body: bytes | None = None
            if self.path in ("/", "/index.html"):
                body = listing
            elif self.path.startswith("/items/") and self.path.endswith(".html"):
                stem = self.path[len("/items/") : -len(".html")]
                if stem.isdigit() and 1 <= int(stem) <= pages:
                    body = detail_html(int(stem)).encode()
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


# --------------------------------------------------------------------------- contenders (run in subprocesses)


async def bare_playwright(url: str, concurrency: int, chromium: str) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    items: list[dict[str, Any]] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True)
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(url)
        links: list[str] = await page.eval_on_selector_all("li.product-link a", "els => els.map(e => e.href)")
        queue: asyncio.Queue[str] = asyncio.Queue()
        for link in links:
            queue.put_nowait(link)

        async def worker(page: Any) -> None:
            while not queue.empty():
                link = queue.get_nowait()
                await page.goto(link)
                items.append(
                    {
                        "sku": await page.locator("article.product").get_attribute("data-sku"),
                        "name": await page.locator(".name").inner_text(),
                        "price": float(await page.locator(".price").inner_text()),
                    }
                )

        pages = [page, *[await context.new_page() for _ in range(concurrency - 1)]]
        await asyncio.gather(*(worker(p) for p in pages))
        await browser.close()
    return items


async def crawlee_crawler(url: str, concurrency: int, chromium: str) -> list[dict[str, Any]]:
    from crawlee import ConcurrencySettings
    from crawlee.crawlers import PlaywrightCrawler, PlaywrightCrawlingContext

    items: list[dict[str, Any]] = []
    crawler = PlaywrightCrawler(
        concurrency_settings=ConcurrencySettings(
            min_concurrency=concurrency, desired_concurrency=concurrency, max_concurrency=concurrency
        ),
        browser_launch_options={"executable_path": chromium, "chromium_sandbox": False},
        headless=True,
        max_requests_per_crawl=10_000,
    )

    @crawler.router.default_handler
    async def listing(context: PlaywrightCrawlingContext) -> None:
        await context.enqueue_links(selector="li.product-link a", label="DETAIL")

    @crawler.router.handler("DETAIL")
    async def detail(context: PlaywrightCrawlingContext) -> None:
        page = context.page
        items.append(
            {
                "sku": await page.locator("article.product").get_attribute("data-sku"),
                "name": await page.locator(".name").inner_text(),
                "price": float(await page.locator(".price").inner_text()),
            }
        )

    await crawler.run([url])
    return items


def scrapy_spider(url: str, concurrency: int, chromium: str) -> list[dict[str, Any]]:
    import scrapy
    from scrapy.crawler import CrawlerProcess

    items: list[dict[str, Any]] = []

    class Spider(scrapy.Spider):
        name = "bench"

        async def start(self) -> Any:
            yield scrapy.Request(url, meta={"playwright": True})

        def parse(self, response: Any) -> Any:
            for href in response.css("li.product-link a::attr(href)").getall():
                yield response.follow(href, callback=self.parse_detail, meta={"playwright": True})

        def parse_detail(self, response: Any) -> Any:
            items.append(
                {
                    "sku": response.css("article.product::attr(data-sku)").get(),
                    "name": response.css(".name::text").get(),
                    "price": float(response.css(".price::text").get()),
                }
            )

    process = CrawlerProcess(
        settings={
            "DOWNLOAD_HANDLERS": {
                "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
                "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
            },
            "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
            "PLAYWRIGHT_BROWSER_TYPE": "chromium",
            "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": chromium, "headless": True},
            "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": concurrency,
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "ROBOTSTXT_OBEY": False,
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "WARNING",
        }
    )
    process.crawl(Spider)
    process.start()
    return items


QUARRY_LISTING = """
from pathlib import Path

DETAIL = str(Path(__file__).with_name("detail.py"))


async def run(ctx):
    await ctx.page.goto(ctx.job["url"])
    links = await ctx.page.eval_on_selector_all("li.product-link a", "els => els.map(e => e.href)")
    for href in links:
        await ctx.emit.enqueue(DETAIL, params={"url": href})
"""

QUARRY_DETAIL = """
async def run(ctx):
    page = ctx.page
    await page.goto(ctx.job["url"])
    await ctx.emit.item(
        item_type="product",
        data={
            "sku": await page.locator("article.product").get_attribute("data-sku"),
            "name": await page.locator(".name").inner_text(),
            "price": float(await page.locator(".price").inner_text()),
        },
    )
"""


def quarry_items(storage: Path) -> list[dict[str, Any]]:
    from quarry_lode import open_dataset

    rows = open_dataset(str(storage)).read("events").to_pylist()
    return [json.loads(r["payload"])["data"] for r in rows if r["event_type"] == "item"]


#: extra ``quarry run`` arguments for both Quarry contenders (``--quarry-args``)
QUARRY_EXTRA: list[str] = []


def stop_reuse_server(directory: Path) -> None:
    """SIGTERM the browser reuse server a Quarry run left in ``directory`` (it would stop itself when idle)."""
    import signal

    try:
        pid = int(json.loads((directory / "browser.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)


#: ``--cpu``: sample the CPU time of every process of each contender (psutil) and print it by kind
CPU_BY_PROCESS = False


def _process_kind(cmdline: list[str], top: bool) -> str:
    joined = " ".join(cmdline)
    if top:
        return "main process"
    if "chrom" in joined:
        for flag in cmdline:
            if flag.startswith("--type="):
                return "renderers" if flag == "--type=renderer" else "other Chromium"
        return "browsers"
    if "node" in (cmdline[0] if cmdline else "") or ("playwright" in joined and "driver" in joined):
        return "Playwright drivers"
    if "quarry_executor" in joined:
        return "executors"
    return "other"


def run_sampled(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[Any, dict[str, float]]:
    """Run ``cmd`` like ``subprocess.run``, sampling every process of its tree every 50 ms: CPU s by kind."""
    import psutil

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        root = psutil.Process(proc.pid)
        seen: dict[int, tuple[str, float]] = {}
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    t = p.cpu_times()
                    kind = seen[p.pid][0] if p.pid in seen else _process_kind(p.cmdline(), p.pid == proc.pid)
                    seen[p.pid] = (kind, t.user + t.system)
                except psutil.Error:
                    pass
            time.sleep(0.05)
        by_kind: dict[str, float] = {}
        for kind, cpu in seen.values():
            by_kind[kind] = by_kind.get(kind, 0.0) + cpu
        by_kind["total"] = sum(by_kind.values())
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read()), by_kind


def run_contender(name: str, url: str, concurrency: int, chromium: str, workdir: Path) -> dict[str, Any]:
    """Time one contender in a fresh subprocess; return ``{seconds, items}`` or ``{error}``."""
    # every contender may cache bytecode: with PYTHONDONTWRITEBYTECODE each new interpreter (Quarry's warm
    # executors above all) would compile its imports from source again
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONUNBUFFERED"] = "1"
    if name.startswith("quarry"):
        scripts = workdir / "quarry-scripts"
        scripts.mkdir(parents=True, exist_ok=True)
        (scripts / "listing.py").write_text(QUARRY_LISTING)
        (scripts / "detail.py").write_text(QUARRY_DETAIL)
        storage = workdir / "quarry-data"
        cmd = [
            sys.executable, "-m", "quarry_core.cli", "run", str(scripts / "listing.py"),
            "--job", json.dumps({"url": url}), "--storage-path", str(storage), "--no-config",
            "--depth", "1", "--max-runs", "100000", "--parallel", str(concurrency), "--quiet",
        ]  # fmt: skip
        if name == "quarry-page":
            cmd += ["--isolation", "page"]
        cmd += QUARRY_EXTRA
        env["QUARRY_BROWSER_EXECUTABLE"] = chromium
        # a reuse server of this run only (started by it, counted in its time, stopped after it)
        env["XDG_RUNTIME_DIR"] = str(workdir)
    else:
        out = workdir / f"{name}.json"
        cmd = [sys.executable, __file__, "--contender", name, "--url", url, "--concurrency", str(concurrency)]
        cmd += ["--chromium", chromium, "--out", str(out)]
        env["CRAWLEE_STORAGE_DIR"] = str(workdir / "crawlee-storage")
    started = time.perf_counter()
    if CPU_BY_PROCESS:
        proc, cpu = run_sampled(cmd, cwd=workdir, env=env)
        print("    CPU s by process: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()), file=sys.stderr, flush=True)
    else:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        return {"error": f"exit {proc.returncode}: {tail}"}
    if name.startswith("quarry"):
        stop_reuse_server(workdir / "quarry")
    items = quarry_items(storage) if name.startswith("quarry") else json.loads(out.read_text())
    return {"seconds": seconds, "items": items}


def contender_main(args: argparse.Namespace) -> int:
    if args.contender == "playwright":
        items = asyncio.run(bare_playwright(args.url, args.concurrency, args.chromium))
    elif args.contender == "crawlee":
        items = asyncio.run(crawlee_crawler(args.url, args.concurrency, args.chromium))
    else:
        items = scrapy_spider(args.url, args.concurrency, args.chromium)
    Path(args.out).write_text(json.dumps(items))
    return 0


# --------------------------------------------------------------------------- the driver


def available(name: str) -> bool:
    module = {"crawlee": "crawlee", "scrapy": "scrapy_playwright", "playwright": "playwright"}.get(name)
    return module is None or importlib.util.find_spec(module) is not None


def bench(args: argparse.Namespace) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--pages", str(args.pages)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    base = server.stdout.readline().strip()
    url = f"{base}/index.html"
    expected = {f"SKU-{i:04d}" for i in range(1, args.pages + 1)}
    results: dict[str, Any] = {}
    try:
        for name in args.contenders:
            if not available(name):
                results[name] = {"skipped": "not installed (uv run --group bench ...)"}
                continue
            times: list[float] = []
            error = None
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                    res = run_contender(name, url, args.concurrency, args.chromium, Path(tmp))
                if "error" in res:
                    error = res["error"]
                    break
                skus = [item["sku"] for item in res["items"]]
                if sorted(skus) != sorted(expected):
                    error = f"wrong items: {len(skus)} items, {len(set(skus) & expected)} of {len(expected)} expected"
                    break
                times.append(res["seconds"])
                print(f"  {LABELS[name]}: {res['seconds']:.2f} s", file=sys.stderr, flush=True)
            if error is not None:
                results[name] = {"error": error}
                continue
            seconds = statistics.median(times)
            results[name] = {"seconds": round(seconds, 3), "pages_per_s": round((args.pages + 1) / seconds, 2)}
    finally:
        server.stdin.close()
        server.wait(10)
    return results


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"## Crawl: 1 listing + {args.pages} detail pages, {args.concurrency} concurrent pages, {args.chromium}",
        "",
        f"{'contender':<28}{'seconds':>10}{'pages/s':>10}",
    ]
    for name in args.contenders:
        r = results.get(name, {})
        if "pages_per_s" in r:
            lines.append(f"{LABELS[name]:<28}{r['seconds']:>10.2f}{r['pages_per_s']:>10.2f}")
        else:
            lines.append(f"{LABELS[name]:<28}  {r.get('skipped') or r.get('error')}")
    for variant in ("quarry", "quarry-page"):
        q = results.get(variant, {}).get("pages_per_s")
        if not q:
            continue
        lines.append("")
        for peer, target in TARGETS.items():
            p = results.get(peer, {}).get("pages_per_s")
            if not p:
                continue
            ratio = q / p
            verdict = "meets" if ratio >= target else "misses"
            lines.append(f"{LABELS[variant]} / {LABELS[peer]}: {ratio:.2f}x ({verdict} the {target}x target)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the median counts")
    parser.add_argument("--chromium", default=os.environ.get("QUARRY_BROWSER_EXECUTABLE", CHROMIUM))
    parser.add_argument("--only", help=f"comma-separated contenders ({', '.join(LABELS)})")
    parser.add_argument("--json", help="also write the results as JSON to this path")
    parser.add_argument("--quarry-args", default="", help="extra quarry run arguments, e.g. --no-browser-reuse")
    parser.add_argument("--cpu", action="store_true", help="print CPU seconds by process kind (psutil samples)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.pages)
        return 0
    if args.contender:
        return contender_main(args)
    if not os.access(args.chromium, os.X_OK):
        print(f"error: Chromium not found at {args.chromium} (use --chromium PATH)", file=sys.stderr)
        return 2
    args.contenders = args.only.split(",") if args.only else list(LABELS)
    unknown = [c for c in args.contenders if c not in LABELS]
    if unknown:
        print(f"error: unknown contender(s) {', '.join(unknown)} (valid: {', '.join(LABELS)})", file=sys.stderr)
        return 4
    QUARRY_EXTRA[:] = args.quarry_args.split()
    global CPU_BY_PROCESS
    CPU_BY_PROCESS = args.cpu
    results = bench(args)
    print(report(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps({"pages": args.pages, "concurrency": args.concurrency, **results}))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
