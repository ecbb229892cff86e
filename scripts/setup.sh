#!/usr/bin/env bash
# Create .venv with the toolkit and its test and cloud extras (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[gcp,dev]"
# The balancer's default data plane is HAProxy, a system package: install it where we can (root
# with apt-get), else say how (BalancerSpec(data_plane="python") needs nothing more).
if ! command -v haproxy >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq haproxy >/dev/null) \
      || echo "warning: could not install haproxy; install it (apt-get install haproxy) or use data_plane=\"python\""
  else
    echo "note: haproxy is not installed; the balancer's default data plane needs it:" \
      "sudo apt-get install haproxy (or brew install haproxy), or use BalancerSpec(data_plane=\"python\")"
  fi
fi
