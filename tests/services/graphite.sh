#!/usr/bin/env bash
# The Graphite front ends for the reader tests and examples, each in its own pinned venv (a venv holding both would
# make the cyanite finder build graphite-api's node classes inside graphite-web, which then renders nothing):
#   install              graphite-api 1.1.3 and graphite-web 1.1.10 (its PyPI sdist, run in place), both with
#                        the stock cyanite 0.4.6 finder and gunicorn; idempotent, safe to run concurrently
#   api DIR PORT URL…    runs graphite-api on 127.0.0.1:PORT in the foreground, its finder reading the consthash
#                        readers at URL… (round-robin, as in a farm); config and logs under DIR
#   web DIR PORT URL…    the same with graphite-web (its sqlite database and logs under DIR)
# Environment: GRAPHITE_HOME (target/graphite): where the venvs live.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HOME_="${GRAPHITE_HOME:-$ROOT/target/graphite}"
REQ="$ROOT/tests/services"
WEB_VERSION=1.1.10
WEB_SRC="$HOME_/graphite-web-$WEB_VERSION/webapp"

say() { echo "graphite.sh: $*" >&2; }

venv() { # NAME REQUIREMENTS
  local v="$HOME_/$1"
  if [ -f "$v/.done" ] && cmp -s "$2" "$v/.done"; then return 0; fi
  say "creating the $1 venv"
  rm -rf "$v"
  python3 -m venv "$v"
  for attempt in 1 2; do
    if "$v/bin/pip" install -q --disable-pip-version-check -r "$2"; then cp "$2" "$v/.done"; return 0; fi
    say "pip install attempt $attempt failed"
  done
  say "could not install $2"; exit 1
}

install() {
  mkdir -p "$HOME_"
  exec 9>"$HOME_/.lock"
  flock 9
  venv api-venv "$REQ/graphite-api.requirements.txt"
  venv web-venv "$REQ/graphite-web.requirements.txt"
  if [ ! -f "$WEB_SRC/graphite/settings.py" ]; then
    say "fetching the graphite-web $WEB_VERSION sdist"
    local dl="$HOME_/download"
    rm -rf "$dl" && mkdir -p "$dl"
    "$HOME_/web-venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
      "graphite-web==$WEB_VERSION" -d "$dl"
    tar xzf "$dl/graphite-web-$WEB_VERSION.tar.gz" -C "$HOME_"
  fi
  exec 9>&-
}

urls_yaml() { for u in "$@"; do echo "    - $u"; done; }
urls_py() { local s=""; for u in "$@"; do s="$s'$u', "; done; echo "($s)"; }

api() {
  local dir port="$2"; dir="$(mkdir -p "$1" && cd "$1" && pwd)"; shift 2
  [ $# -gt 0 ] || { say "api DIR PORT URL…"; exit 2; }
  install
  mkdir -p "$dir"
  cat >"$dir/graphite-api.yaml" <<YAML
search_index: $dir/index
finders:
  - cyanite.CyaniteFinder
cyanite:
  urls:
$(urls_yaml "$@")
YAML
  cd "$dir"
  GRAPHITE_API_CONFIG="$dir/graphite-api.yaml" exec "$HOME_/api-venv/bin/gunicorn" -b "127.0.0.1:$port" -w 2 \
    --control-socket "$dir/gunicorn.ctl" --error-logfile "$dir/gunicorn.log" graphite_api.app:app
}

web() {
  local dir port="$2"; dir="$(mkdir -p "$1" && cd "$1" && pwd)"; shift 2
  [ $# -gt 0 ] || { say "web DIR PORT URL…"; exit 2; }
  install
  mkdir -p "$dir/settings" "$dir/storage/log/webapp"
  cat >"$dir/settings/consthash_graphite_web.py" <<PY
SECRET_KEY = 'consthash-tests'
STORAGE_FINDERS = ('cyanite.CyaniteFinder',)
CYANITE_URLS = $(urls_py "$@")
STORAGE_DIR = '$dir/storage'
PY
  export PYTHONPATH="$WEB_SRC:$dir/settings" GRAPHITE_SETTINGS_MODULE=consthash_graphite_web \
    DJANGO_SETTINGS_MODULE=graphite.settings
  "$HOME_/web-venv/bin/django-admin" migrate --run-syncdb >"$dir/migrate.log" 2>&1 \
    || { cat "$dir/migrate.log" >&2; say "graphite-web migrate failed"; exit 1; }
  cd "$dir"
  exec "$HOME_/web-venv/bin/gunicorn" -b "127.0.0.1:$port" -w 2 --control-socket "$dir/gunicorn.ctl" \
    --error-logfile "$dir/gunicorn.log" graphite.wsgi:application
}

case "${1:-}" in
  install) install ;;
  api) shift; api "$@" ;;
  web) shift; web "$@" ;;
  *) echo "usage: $0 install | api DIR PORT URL… | web DIR PORT URL…" >&2; exit 2 ;;
esac
