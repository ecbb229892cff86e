#!/usr/bin/env bash
# A first contact with GKE for a person with a Google Cloud project: up() -> predict -> load_test
# -> utilization() -> a second up() that must change nothing -> down(), printing each check.
# Without the Pulumi CLI, gcloud, gke-gcloud-auth-plugin, credentials or MLTOOLKIT_GCP_PROJECT it
# prints SKIPPED and what is missing, and creates nothing. See mltoolkit/gcp/smoke.py.
#   MLTOOLKIT_GCP_PROJECT=my-project scripts/gke_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" -m mltoolkit.gcp.smoke "$@"
