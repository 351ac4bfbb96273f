# The two commands a newcomer needs: `make demo` and `make test`. Everything else is for developers.
SHELL := /bin/bash
# setup installs uv with `pip install --user` when it is missing: make its bin directory visible to every target.
export PATH := $(shell python3 -m site --user-base 2>/dev/null)/bin:$(PATH)
PYTEST_ARGS ?=

.PHONY: setup demo test check lint typecheck build bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	uv run --frozen python scripts/demo.py

test: setup
	@bash scripts/services.sh
	@set +e; uv run --frozen pytest $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing (exit 5)"; exit 1; fi; exit $$code

lint:
	uv run --frozen ruff format --check .
	uv run --frozen ruff check .

typecheck:
	uv run --frozen mypy

check: setup lint typecheck
	uv run --frozen pytest $(PYTEST_ARGS)

build:
	rm -rf dist
	uv build --all-packages --no-sources -o dist
	uv run --frozen twine check --strict dist/*

# Ingest benchmark (a few minutes): N items through each policy into Parquet, against a bare wire ceiling and
# Scrapy (from the optional `bench` dependency group). BENCH_ARGS="--n 20000 --rss-n 0" for a quick look.
BENCH_ARGS ?=
# Crawl benchmark (a few minutes): 1 listing + 200 detail pages crawled by Quarry fan-out, bare Playwright, Crawlee
# and scrapy-playwright, 4 concurrent pages each. CRAWL_BENCH_ARGS="--pages 50 --only quarry,playwright" for a quick look.
CRAWL_BENCH_ARGS ?=
bench: setup
	uv run --frozen --group bench python benchmarks/ingest.py $(BENCH_ARGS)
	uv run --frozen --group bench python benchmarks/crawl.py $(CRAWL_BENCH_ARGS)

clean:
	rm -rf dist quarry-data .pytest_cache .mypy_cache .ruff_cache
