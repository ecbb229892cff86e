"""A first contact with GKE, end to end, for a person with a Google Cloud project:

    MLTOOLKIT_GCP_PROJECT=my-project scripts/gke_smoke.sh   # or: python -m mltoolkit.gcp.smoke

up() → predict → load_test → utilization() → a second up() that must change nothing → down(),
printing each check as it passes. Without the Pulumi CLI, gcloud, gke-gcloud-auth-plugin,
application-default credentials or ``MLTOOLKIT_GCP_PROJECT`` it says what is missing and exits
0 with ``SKIPPED`` (nothing is created). Creates a small zonal cluster (about $0.25/hour, 15-25
minutes in all); ``down()`` runs whatever happens. ``MLTOOLKIT_GCP_ZONE`` (default
us-central1-a) and ``MLTOOLKIT_GCP_ALLOWED_CIDR`` (your address as a /32; default: public with
``allow_public=True``) tune it.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from typing import Callable, Mapping

CHANGE_FREE = ("same",)


def missing_prerequisites(environ: Mapping[str, str] | None = None) -> list[str]:
    """What this machine lacks for a real run (empty: ready)."""
    from mltoolkit.gcp.target import application_default_credentials_source
    from mltoolkit.stack.errors import GoogleCredentialsError

    env = os.environ if environ is None else environ
    missing = [
        f"{tool} on PATH ({hint})"
        for tool, hint in (
            ("pulumi", "conda install -c conda-forge pulumi, or https://www.pulumi.com/docs/install/"),
            ("gcloud", "https://cloud.google.com/sdk/docs/install"),
            ("gke-gcloud-auth-plugin", "gcloud components install gke-gcloud-auth-plugin"),
        )
        if shutil.which(tool, path=env.get("PATH")) is None
    ]
    try:
        if application_default_credentials_source(env) is None:
            missing.append("application-default credentials (gcloud auth application-default login)")
    except GoogleCredentialsError as exc:
        missing.append(str(exc))
    if not env.get("MLTOOLKIT_GCP_PROJECT"):
        missing.append("MLTOOLKIT_GCP_PROJECT: a project where a small GKE cluster may be created")
    return missing


def unexpected_changes(changes: Mapping[str, int]) -> dict[str, int]:
    """The operations of an ``up`` other than 'same' (empty: the up changed nothing)."""
    return {op: n for op, n in changes.items() if op not in CHANGE_FREE and n}


def run(say: Callable[[str], None] = print) -> int:
    """The smoke run; returns the process exit code."""
    missing = missing_prerequisites()
    if missing:
        say("SKIPPED: the GKE smoke run needs " + "; ".join(missing) + ". Nothing was created.")
        return 0
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from mltoolkit import ClusterSpec, DeploymentSpec, GKETarget, ModelSpec

    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    allowed = os.environ.get("MLTOOLKIT_GCP_ALLOWED_CIDR")
    cluster = ClusterSpec(
        name=f"mlt-smoke-{uuid.uuid4().hex[:6]}",
        project=os.environ["MLTOOLKIT_GCP_PROJECT"],
        location=os.environ.get("MLTOOLKIT_GCP_ZONE", "us-central1-a"),
        allowed_cidrs=(allowed or "0.0.0.0/0",),
        allow_public=allowed is None,
    )
    spec = DeploymentSpec(model=ModelSpec.from_object(model, name="digits"), replicas=2)
    target = GKETarget(cluster, stack=cluster.name, ttl="3h", progress="text")
    failures = 0

    def check(what: str, ok: bool, detail: str = "") -> None:
        nonlocal failures
        failures += 0 if ok else 1
        say(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")

    try:
        plan = target.plan(spec)
        say(f"plan: {len(plan.resources)} resources, ${plan.cost_per_hour:.2f}/hour")
        endpoint = target.up(spec)
        check("first up() returned an endpoint", endpoint is not None, str(getattr(endpoint, "url", None)))
        if endpoint is not None:
            predictions = endpoint.predict(X[:5])
            check("predict() answers one prediction per row", len(predictions) == 5,
                  f"{list(predictions)} (expected {list(y[:5])})")
            frame = target.load_test(rate=20, duration=10, X=X)
            ok = frame["status"].eq(200)
            check("load_test(): every request answered 200", bool(ok.all()),
                  f"{int(ok.sum())}/{len(frame)}, replicas {sorted(frame['replica'].dropna().unique())}")
        util = target.utilization()
        check("utilization(): one row per node", len(util) >= 1, f"{len(util)} nodes, replicas {util['replicas'].tolist()}")
        target.up(spec)
        extra = unexpected_changes(target.last_changes)
        check("second up() with the same spec changed nothing", not extra,
              f"changes {target.last_changes}" + (f"; unexpected {extra}" if extra else ""))
    except Exception as exc:  # noqa: BLE001 - reported, then down() runs
        check("run without errors", False, f"{type(exc).__name__}: {exc}")
    finally:
        removed = target.down()
        check("down() removed the stack", removed and not target.status().exists)
    say("smoke run " + ("passed" if failures == 0 else f"FAILED ({failures} check(s))"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
