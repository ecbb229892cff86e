"""A hung replica under load: what requests pay with and without hedging (issue 13, defect 7).

    .venv/bin/python benchmarks/hung_replica.py                 # 3 rounds of each (~2 min)
    .venv/bin/python benchmarks/hung_replica.py --quick         # 1 round of each

A LocalTarget with 3 replicas of the digits LogisticRegression (default policy), 200 requests/s
from ``load_test`` for 10 s; 2 s in, replica digits-1 is SIGSTOPped for 5 s (then SIGCONT, if the
supervisor has not replaced it: liveness kills it after ``liveness_timeout_s``, 3 s, and the warm
standby takes over). ``hedge off`` is ``BalancerSpec(data_plane="python")``; ``hedge on`` is
``BalancerSpec(hedge=True, data_plane="python")`` (hedging needs the python data plane).
Per mode: failed requests, max and p99 latency over the whole test, and requests hedged (copies the
balancer sent to another replica). Goal: with one replica stopped for 5 s under load, max latency
≤ 1 s and 0 failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from typing import Sequence

import numpy as np
from peers.stats import Spread, render_table

GOAL_MAX_S = 1.0
STOP_AT_S = 2.0
STOP_FOR_S = 5.0


def one_round(hedge: bool, X: np.ndarray, model_spec: object) -> dict[str, float]:
    from mltoolkit.local import LocalTarget
    from mltoolkit.spec import BalancerSpec, DeploymentSpec

    balancer = BalancerSpec(hedge=hedge, data_plane="python")  # hedging needs the python data plane
    spec = DeploymentSpec(model=model_spec, replicas=3, balancer=balancer)
    with LocalTarget(progress=False) as target:
        target.up(spec)
        pid = int(target.status().set_index("name").loc["digits-1", "pid"])

        def stop_and_resume() -> None:
            time.sleep(STOP_AT_S)
            os.kill(pid, signal.SIGSTOP)
            time.sleep(STOP_FOR_S)
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass  # liveness already killed and replaced it

        stopper = threading.Thread(target=stop_and_resume)
        stopper.start()
        frame = target.load_test(rate=200, duration=10, X=X)
        stopper.join()
        with urllib.request.urlopen(target.endpoint.url + "/-/replicas", timeout=10) as answer:
            hedged = sum(r.get("hedged", 0) for r in json.load(answer)["replicas"])
        restarts = int(target.status().set_index("name").loc["digits-1", "restarts"])
    latency = frame["latency_s"].dropna()
    return {
        "failed": float((frame["status"] != 200).sum()),
        "max_s": float(latency.max()),
        "p99_ms": float(np.percentile(latency, 99) * 1000),
        "hedged": float(hedged),
        "restarts": float(restarts),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of each")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("argument --repetitions: at least 1")
    repetitions = 1 if args.quick else args.repetitions

    import tempfile

    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from mltoolkit.spec import ModelSpec

    X, y = load_digits(return_X_y=True)
    with tempfile.TemporaryDirectory(prefix="hung-") as tmp:
        model = ModelSpec.from_object(LogisticRegression(max_iter=2000).fit(X, y), "digits", directory=tmp)
        rounds: dict[str, list[dict[str, float]]] = {"hedge off": [], "hedge on": []}
        for repetition in range(repetitions):
            order = ["hedge off", "hedge on"] if repetition % 2 == 0 else ["hedge on", "hedge off"]
            for mode in order:
                result = one_round(mode == "hedge on", X, model)
                rounds[mode].append(result)
                print(f"round {repetition + 1} {mode}: " + ", ".join(f"{k} {v:.3g}" for k, v in result.items()), flush=True)
    print(f"\none replica SIGSTOPped {STOP_FOR_S:g} s at 200 req/s, 3 replicas; median [min-max] over rounds")
    digits = {"failed": 0, "max_s": 3, "p99_ms": 2, "hedged": 0, "restarts": 0}
    rows = [[mode, *(Spread.of([r[k] for r in results]).format(d) for k, d in digits.items())]
            for mode, results in rounds.items()]  # fmt: skip
    print(render_table(["", *digits], rows))
    on = rounds["hedge on"]
    worst = max(r["max_s"] for r in on)
    failed = sum(r["failed"] for r in on)
    met = worst <= GOAL_MAX_S and failed == 0
    print(f"goal (hedge on): max latency <= {GOAL_MAX_S:g} s in every round ({worst:.2f} s) and 0 failed "
          f"({failed:g}): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
