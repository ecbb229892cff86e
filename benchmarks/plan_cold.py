"""plan() in a fresh process against the import of the provider modules it needs (issue 12.12).

Each repetition starts fresh Python processes (the notebook kernel's first ``plan()``):

- ``imports``: import exactly the ``pulumi``, ``pulumi_gcp`` and ``pulumi_kubernetes`` modules a
  plan loads (the list is taken from a plan run once in its own process);
- ``plan cold``: import ``GKETarget`` and run its first ``plan()`` (everything included);
- ``plan warm``: a second ``plan()`` in that same process.

Prints medians and spread (min-max) and the ratio cold / imports; the goal is a cold plan close
to the imports it cannot avoid (ratio at most 1.5). ``--tree DIR`` runs another source tree (e.g.
an older commit from ``git archive REV | tar -x -C DIR``) in the same run, for a before/after.

    .venv/bin/python benchmarks/plan_cold.py                 # 5 repetitions
    .venv/bin/python benchmarks/plan_cold.py --quick         # 2 repetitions
    .venv/bin/python benchmarks/plan_cold.py --tree /tmp/before --repetitions 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5

PLAN = """
import json, sys, time
t0 = time.perf_counter()
from mltoolkit.gcp.target import GKETarget
from mltoolkit.spec import ClusterSpec, DeploymentSpec, ModelSpec
cluster = ClusterSpec(name="ml", project="my-proj", location="us-central1-a", allowed_cidrs=("198.51.100.0/24",),
                      load_balancer="l7", private_nodes=True)
target = GKETarget(cluster, check_credentials=False, progress=False)
spec = DeploymentSpec(model=ModelSpec.from_image("us-docker.pkg.dev/p/r/d:1", name="digits"))
target.plan(spec)
t1 = time.perf_counter()
target.plan(spec)
t2 = time.perf_counter()
modules = sorted(m for m in sys.modules if m.split(".")[0] in ("pulumi", "pulumi_gcp", "pulumi_kubernetes"))
print(json.dumps({"cold": t1 - t0, "warm": t2 - t1, "modules": modules}))
"""

IMPORTS = """
import importlib, json, sys, time
modules = json.loads(sys.argv[1])
t0 = time.perf_counter()
for name in modules:
    importlib.import_module(name)
print(json.dumps({"imports": time.perf_counter() - t0}))
"""


def _run(tree: Path, code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "MLTOOLKIT_HOME": "/tmp/mltoolkit-plan-cold"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                         cwd="/tmp", timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(trees: list[Path], repetitions: int) -> dict[Path, dict[str, list[float]]]:
    """Every measure of every tree once per repetition, interleaved, so a burst of load on a
    shared machine hits all of them alike."""
    modules = {tree: _run(tree, PLAN)["modules"] for tree in trees}
    found = {tree: {"imports": [], "plan cold": [], "plan warm": []} for tree in trees}
    for _ in range(repetitions):
        for tree in trees:
            found[tree]["imports"].append(_run(tree, IMPORTS, json.dumps(modules[tree]))["imports"])
            plan = _run(tree, PLAN)
            found[tree]["plan cold"].append(plan["cold"])
            found[tree]["plan warm"].append(plan["warm"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repetitions")
    parser.add_argument("--tree", type=Path, action="append", default=[], help="another source tree to compare")
    options = parser.parse_args()
    repetitions = 2 if options.quick else options.repetitions
    print(f"{'tree':<28} {'measure':<10} {'median s':>9} {'min-max s':>14}  ratio to imports")
    trees = [ROOT, *options.tree]
    measured = measure(trees, repetitions)
    for tree in trees:
        found = measured[tree]
        base = statistics.median(found["imports"])
        for name, values in found.items():
            median = statistics.median(values)
            print(f"{str(tree)[-28:]:<28} {name:<10} {median:9.2f} {min(values):6.2f}-{max(values):<6.2f}  "
                  f"{median / base:5.2f}x")
        ratio = statistics.median(found["plan cold"]) / base
        verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(f"{str(tree)[-28:]:<28} goal: plan cold <= {GOAL_RATIO}x the imports: {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
