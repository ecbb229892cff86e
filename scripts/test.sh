#!/usr/bin/env bash
# Set up a virtual environment (if missing) and run every test, notebooks included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# checkov, when installed apart (.ci/run does), checks the rendered Kubernetes objects.
if [ -z "${CHECKOV:-}" ] && [ -x .venv-checkov/bin/checkov ]; then
  export CHECKOV="$PWD/.venv-checkov/bin/checkov"
fi
exec .venv/bin/python -m pytest --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg "$@"
