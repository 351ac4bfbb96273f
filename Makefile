# The two commands a newcomer needs: `make demo` and `make test`. Everything else is for developers.
SHELL := /bin/bash
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

bench: setup
	uv run --frozen python benchmarks/ingest.py

clean:
	rm -rf dist quarry-data .pytest_cache .mypy_cache .ruff_cache
