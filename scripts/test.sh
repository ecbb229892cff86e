#!/usr/bin/env bash
# Set up a virtual environment (if missing) and run every test, notebooks included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg "$@"
