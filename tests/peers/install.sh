#!/usr/bin/env bash
# Installs the live relays that tests/live_peers.rs runs side by side with consthash: Debian carbon-c-relay (the
# daemon) and graphite-carbon (carbon-relay), and Etsy statsd 0.9.0 (proxy.js) through tests/statsd_compat/install.sh.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v carbon-c-relay >/dev/null || missing+=(carbon-c-relay)
command -v carbon-relay >/dev/null || missing+=(graphite-carbon)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  # graphite-carbon's postinst would start carbon-cache as a service; the tests start their own carbon-relay.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash tests/statsd_compat/install.sh
