#!/bin/sh
# Regenerates tests/data/golden/ from the REAL peer programs (spec §7.5 "Golden vectors"):
#   * carbon (PyPI; CARBON_VERSION, default 1.1.10 = current release), imported in-process in a
#     venv: carbon.util.parseDestinations + carbon.routers.ConsistentHashingRouter
#     (REPLICATION_FACTOR, DIVERSE_REPLICAS) over carbon.hashing.ConsistentHashRing;
#   * carbon-c-relay (Debian package, /usr/bin/carbon-c-relay), run in test mode `-t -d`, which
#     dumps each cluster's ring and prints where every stdin line routes (with hash_pos);
#   * npm hashring@3.2.0 under node, configured as statsd 0.9.0's proxy.js builds its ring.
# Needs: python3 (venv, pip), node + npm, network access to PyPI and npm, and root for apt-get
# when carbon-c-relay is missing. Work files go to a temp dir (kept with KEEP=1).
# Usage: tests/data/generate-golden.sh            (from anywhere; writes tests/data/golden/)
# The Rust tests in src/ring/golden_tests.rs read the result; never edit the files by hand.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/golden"
carbon_version=${CARBON_VERSION:-1.1.10}
hashring_version=${HASHRING_VERSION:-3.2.0}
work=$(mktemp -d /tmp/consthash-golden.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

if ! command -v carbon-c-relay >/dev/null 2>&1; then
    apt-get update && apt-get install -y carbon-c-relay
fi
command -v node >/dev/null 2>&1 || { echo "node and npm are required" >&2; exit 1; }

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "carbon==$carbon_version"

mkdir -p "$work/npm"
(cd "$work/npm" && npm init -y >/dev/null && npm install --silent "hashring@$hashring_version" >/dev/null)

rm -f "$out"/*.tsv "$out"/*.txt
CARBON_C_RELAY=$(command -v carbon-c-relay) \
    "$work/venv/bin/python" "$here/golden-gen/gen.py" "$out" "$work/npm/node_modules"
du -sh "$out"
