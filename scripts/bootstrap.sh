#!/usr/bin/env bash
# Installs everything the tests, demo and benchmarks need on a fresh Debian machine:
# PostgreSQL server binaries, Prometheus, Alertmanager and Chromium (Debian packages, when absent),
# and a virtualenv in .venv with the project and its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v alertmanager >/dev/null 2>&1 || command -v prometheus-alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
# Headless Chromium renders the HTML pages (model cards, the live page) in the tests.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: please install with root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v -e "is ignored" -e "^ *$" || true
.venv/bin/python -c "import stream_mlops, psycopg, numpy, scipy, prometheus_client, aiosmtplib"
echo "bootstrap: ready (.venv)"
