#!/usr/bin/env bash
# Install a Chromium the way a user would (see docs/contracts and spec runtime browser provisioning):
# an existing one is kept; otherwise Playwright's own download where downloads work; otherwise the
# distribution's package (Debian: chromium-headless-shell) when we are root; otherwise a clear message.
set -u
have_browser() {
  if [ -n "${QUARRY_BROWSER_EXECUTABLE:-}" ] && [ -x "${QUARRY_BROWSER_EXECUTABLE}" ]; then return 0; fi
  for p in /usr/lib/chromium/chromium-headless-shell /usr/lib/chromium/chromium; do [ -x "$p" ] && return 0; done
  uv run --frozen python - <<'PY' 2>/dev/null && return 0
import os, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    sys.exit(0 if os.path.exists(p.chromium.executable_path) else 1)
PY
  for b in chromium-headless-shell chromium chromium-browser google-chrome-stable google-chrome; do
    command -v "$b" >/dev/null 2>&1 && return 0
  done
  return 1
}
if have_browser; then echo "browser: found"; exit 0; fi
echo "browser: none found; trying Playwright's download (playwright install chromium-headless-shell)"
if timeout 300 uv run --frozen playwright install chromium-headless-shell >/tmp/quarry-playwright-install.log 2>&1 && have_browser; then
  echo "browser: installed by Playwright"; exit 0
fi
echo "browser: Playwright's download is not available here (see /tmp/quarry-playwright-install.log)"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium-headless-shell"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium-headless-shell >/dev/null
  if have_browser; then echo "browser: installed chromium-headless-shell"; exit 0; fi
fi
cat >&2 <<'MSG'
browser: no Chromium could be installed automatically.
  Install one and re-run:  playwright install chromium   (where downloads work)
                      or:  sudo apt-get install chromium-headless-shell   (Debian/Ubuntu)
                      or:  export QUARRY_BROWSER_EXECUTABLE=/path/to/chromium
MSG
exit 1
