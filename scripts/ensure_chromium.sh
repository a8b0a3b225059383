#!/usr/bin/env bash
# Make sure a Chromium that Playwright can drive is present.
# Order: an explicit $SIMPERSONA_BROWSER; Playwright's own Chromium; a system chromium;
# else install one: Debian's package when root, otherwise Playwright's own download.
set -euo pipefail
VENV=${1:-.venv}

have() {
  [[ -n "${SIMPERSONA_BROWSER:-}" && -x "${SIMPERSONA_BROWSER}" ]] && return 0
  "$VENV/bin/python" - <<'PY' 2>/dev/null && return 0
import os, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    sys.exit(0 if os.path.exists(p.chromium.executable_path) else 1)
PY
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have; then
  echo "browser: ok"
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
elif "$VENV/bin/playwright" install chromium; then
  echo "browser: installed Playwright's Chromium"
fi
if ! have; then
  cat >&2 <<'MSG'
browser: no Chromium could be found or installed.
  Install one of:
    sudo apt-get install chromium                 (Debian/Ubuntu)
    .venv/bin/playwright install --with-deps chromium
  or point SIMPERSONA_BROWSER at a Chromium/Chrome executable.
MSG
  exit 1
fi
echo "browser: ok"
