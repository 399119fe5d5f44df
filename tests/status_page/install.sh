#!/usr/bin/env bash
# Installs what tests/it/status_page.rs drives the status page with: Debian's chromium and npm playwright-core
# (the browser automation library without its own browsers). Idempotent. PLAYWRIGHT_DIR (default
# /work/.cache/playwright) is where playwright-core goes; the test reads the same variable.
set -euo pipefail
PLAYWRIGHT_DIR="${PLAYWRIGHT_DIR:-/work/.cache/playwright}"
if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json" ]; then
  command -v npm >/dev/null || { echo "install.sh: npm not found (needs node and npm)" >&2; exit 1; }
  mkdir -p "$PLAYWRIGHT_DIR"
  npm install --prefix "$PLAYWRIGHT_DIR" --no-audit --no-fund --loglevel=error playwright-core@1.65.2
fi
test -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json"
