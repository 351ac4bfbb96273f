#!/usr/bin/env bash
# One-time set-up on a fresh machine: uv, a C compiler (quarry-speedups), the workspace with every member, a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
bash scripts/install-compiler.sh
# Bytecode compiled once here: every `quarry run` starts fresh interpreters (runtime, executors), and with
# PYTHONDONTWRITEBYTECODE set they would otherwise recompile the same modules each time.
uv sync --all-packages --frozen --quiet --compile-bytecode
uv run --frozen --no-sync python -m compileall -q -j 0 quarry-*/src >/dev/null
bash scripts/install-browser.sh
