"""The local quickstart, headless: ``python -m mltoolkit.quickstart [--replicas 3 --nodes 3
--rate 100 --duration 10 --policy ewma --data-plane python]``.

Trains LogisticRegression on scikit-learn's bundled digits, deploys it locally behind the
balancer, checks served predictions against the in-process model, runs an open-loop load test
while sampling utilization, prints the DataFrames, and always tears down. Exit code 1 when the
served predictions differ from the model's, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mltoolkit.local import LocalTarget
from mltoolkit.balancer.policies import DEFAULT_POLICY, policy_names
from mltoolkit.spec import BalancerSpec, DeploymentSpec, ModelSpec
from mltoolkit.spec.deployment import DATA_PLANES, DEFAULT_DATA_PLANE

CHECK_ROWS = 20


def train_digits() -> tuple[Any, np.ndarray, np.ndarray]:
    """A LogisticRegression fitted on the digits data shipped with scikit-learn (no download).

    One BLAS thread: on a small, busy machine more threads only contend (seen: 20 s vs 3 s).
    """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    X, y = load_digits(return_X_y=True)
    with threadpool_limits(limits=1):
        model = LogisticRegression(max_iter=2000).fit(X, y)
    return model, X, y


def digits_spec(
    model: Any, replicas: int = 3, policy: str = DEFAULT_POLICY, data_plane: str = DEFAULT_DATA_PLANE
) -> DeploymentSpec:
    return DeploymentSpec(
        model=ModelSpec.from_object(model, name="digits"),
        replicas=replicas,
        cpu="500m",
        memory="512Mi",
        balancer=BalancerSpec(policy=policy, data_plane=data_plane),
    )


def load_with_utilization(
    target: LocalTarget, X: Any, rate: float, duration: float, interval_s: float = 1.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An open-loop load test, with by-node utilization sampled every ``interval_s`` meanwhile.

    Returns (one row per request, one row per node per sample).
    """
    samples = max(1, int(duration / interval_s))
    util: dict[str, pd.DataFrame] = {}
    failure: list[BaseException] = []

    def sample() -> None:
        try:
            util["frame"] = target.utilization(samples=samples, interval_s=interval_s)
        except BaseException as exc:  # re-raised on the caller's thread
            failure.append(exc)

    sampler = threading.Thread(target=sample, name="quickstart-utilization", daemon=True)
    sampler.start()
    latency = target.load_test(rate=rate, duration=duration, X=X)
    sampler.join(timeout=duration + 60)
    if failure:
        raise failure[0]
    return latency, util["frame"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected a whole number >= 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; expected a number > 0")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mltoolkit.quickstart",
        description="Train a digits classifier, serve it locally behind a balancer, load-test it.",
    )
    parser.add_argument("--replicas", type=_positive_int, default=3, help="model replicas (3)")
    parser.add_argument("--nodes", type=_positive_int, default=3, help="labelled nodes (3)")
    parser.add_argument("--rate", type=_positive_float, default=100.0, help="requests/s (100)")
    parser.add_argument("--duration", type=_positive_float, default=10.0, help="seconds (10)")
    parser.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        choices=policy_names(),
        help=f"balancer policy ({DEFAULT_POLICY})",
    )
    parser.add_argument(
        "--data-plane",
        default=DEFAULT_DATA_PLANE,
        choices=DATA_PLANES,
        help=f"what forwards the requests: HAProxy (apt-get install haproxy) or ours ({DEFAULT_DATA_PLANE})",
    )
    return parser.parse_args(argv)


def _show(title: str, frame: pd.DataFrame) -> None:
    print(f"\n== {title}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(frame.to_string())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("training LogisticRegression on the digits data ...", flush=True)
    model, X, _ = train_digits()
    spec = digits_spec(model, replicas=args.replicas, policy=args.policy, data_plane=args.data_plane)
    target = LocalTarget(nodes=args.nodes)
    _show("plan", target.plan(spec).resources.drop(columns=["command"]))
    try:
        endpoint = target.up(spec)
        served = endpoint.predict(X[:CHECK_ROWS])
        expected = model.predict(X[:CHECK_ROWS])
        matches = bool(np.array_equal(served, expected))
        print(f"\npredictions for {CHECK_ROWS} rows: served {served.tolist()}")
        print(f"in-process model:              {expected.tolist()}")
        print("predictions match" if matches else "PREDICTIONS DIFFER", flush=True)
        print(f"\nload test: {args.rate:g} requests/s for {args.duration:g} s ...", flush=True)
        latency, util = load_with_utilization(target, X, args.rate, args.duration)
        from mltoolkit.observe import summarize

        _show("latency summary", summarize(latency))
        _show("utilization by node", util)
        _show("balancer counters", target.replica_stats())
    finally:
        target.down()
    print("\ndown: every process stopped")
    return 0 if matches else 1


if __name__ == "__main__":
    sys.exit(main())
