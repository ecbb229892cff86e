#!/usr/bin/env bash
# Set up a virtual environment (if missing) and run the local quickstart headless.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m mltoolkit.quickstart "$@"
