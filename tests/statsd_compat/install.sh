#!/usr/bin/env bash
# Installs the reference implementation (Etsy statsd 0.9.0, npm package `statsd`) that the statsd accumulator's
# compatibility test (tests/statsd_compat.rs) compares against. Idempotent: does nothing when it is already there.
# STATSD_DIR (default /work/.cache/statsd) is where it goes; the test reads the same variable.
set -euo pipefail
STATSD_DIR="${STATSD_DIR:-/work/.cache/statsd}"
if [ -f "$STATSD_DIR/node_modules/statsd/stats.js" ] &&
  grep -q '"version": *"0.9.0"' "$STATSD_DIR/node_modules/statsd/package.json"; then
  exit 0
fi
command -v npm >/dev/null || { echo "install.sh: npm not found (needs node and npm)" >&2; exit 1; }
mkdir -p "$STATSD_DIR"
npm install --prefix "$STATSD_DIR" --no-audit --no-fund --loglevel=error statsd@0.9.0
test -f "$STATSD_DIR/node_modules/statsd/stats.js"
