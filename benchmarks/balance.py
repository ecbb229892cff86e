"""Balance under uneven ML load: our policies, nginx and HAProxy against the central-queue ideal.

    .venv/bin/python benchmarks/balance.py            # 3 loads x 3 runs + failure behaviour
    .venv/bin/python benchmarks/balance.py --quick    # 1 run each, shorter: a smoke test

A fleet of 16 simulated replicas (``python -m mltoolkit.sim fleet``, one child process), a quarter
of them 3x slower, 2 slots each, heavy-tailed (Pareto) request costs. For each load (50/70/90 % of
fleet capacity) and each repetition one Poisson arrival trace is drawn, and that same trace (times
and costs) is replayed open-loop through every system: each of ``policy_names()`` through
``python -m mltoolkit.balancer``, nginx (round robin, least_conn) and HAProxy (roundrobin,
leastconn), all as child processes on loopback ports, and fed to the discrete-event simulation of
one central queue (the ideal). Reported per system and load: p50, p99, throughput, error rate and
the spread of utilization across replicas (coefficient of variation of busy time per slot, from
the fleet's own counters), as medians over the runs with [min-max]. A table goes to stdout; a PNG
and CSVs to benchmarks/results/.

Failure behaviour (skip with ``--no-failure``): at 70 % load, one fast replica becomes 10x slower
at 25 % of the run and another dies (connections refused and dropped) at 50 %: how long until each
system routes around them, and how many requests fail.

Several balancers (skip with ``--no-several``; alone with ``--several-only``): K = 1, 2, 4
independent balancer processes running the default policy over the same fleet, each request sent
to one of them at random (an L4 front), against random choice (what kube-proxy does; the same
whatever K) and the central-queue ideal, on the same traces at 90 % load; next to each measured
K, the fleet simulation of K balancers (``mltoolkit.sim.simulate_balancers``) on the same trace.

    .venv/bin/python benchmarks/balance.py --several-only                 # 2 runs x 20 s, ~4 min
    .venv/bin/python benchmarks/balance.py --several-only --quick         # 1 run x 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import aiohttp
import numpy as np
import pandas as pd

from mltoolkit.balancer.policies import DEFAULT_POLICY, policy_names
from mltoolkit.sim.balancers import simulate_balancers
from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet_spec import FleetSpec, uneven_fleet
from mltoolkit.sim.ideal import ideal_for
from mltoolkit.sim.metrics import (
    RunMetrics,
    failures_since,
    ideal_metrics,
    measured_metrics,
    reroute_time_s,
)
from mltoolkit.sim.process import FleetProcess
from mltoolkit.sim.replay import TIMEOUT_ERROR, replay, replay_async
from mltoolkit.sim.trace import ArrivalTrace, poisson_trace, trace_at_utilization
from peers.stats import INTERVAL_CONFIDENCE, median_interval

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "balance"
RESULTS = HERE / "results"
IDEAL = "ideal (central queue)"
PROXY_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 90
LAG_WARNING_MS = 20.0  # send lag p99 above this: the generator, not the system, added delay
FAILURE_CLIENT_TIMEOUT_S = 10  # a client gives up; also keeps never-rerouting systems from draining for minutes


# -- what to run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    loads: tuple[float, ...] = (0.5, 0.7, 0.9)
    repetitions: int = 3
    duration_s: float = 3.0
    replicas: int = 16
    slots: int = 2
    slow_fraction: float = 0.25
    slow_factor: float = 3.0
    mean_cost_s: float = 0.1
    pareto_alpha: float = 2.2
    seed: int = 0
    weighted: bool = False
    failure: bool = True
    failure_load: float = 0.7
    failure_duration_s: float = 8.0
    only: tuple[str, ...] = ()
    steady: bool = True
    several: bool = True
    balancers: tuple[int, ...] = (1, 2, 4)
    several_load: float = 0.9
    several_duration_s: float = 20.0
    several_repetitions: int = 2

    def fleet(self) -> FleetSpec:
        costs = CostDistribution("pareto", self.mean_cost_s, self.pareto_alpha)
        return uneven_fleet(
            self.replicas, slots=self.slots, slow_fraction=self.slow_fraction,
            slow_factor=self.slow_factor, costs=costs, seed=self.seed,
        )


@dataclass(frozen=True)
class System:
    """A balancer under test: ``kind`` is ours (``python -m mltoolkit.balancer`` on its default
    data plane, haproxy) / ours-python (on the python data plane) / nginx / haproxy, ``method``
    its policy."""

    kind: str
    method: str

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.method}"


OURS_KINDS = {"ours": "haproxy", "ours-python": "python"}  # kind -> data plane


def systems(only: Sequence[str]) -> tuple[list[System], list[str]]:
    """Every system to run, and notes on those that cannot run here."""
    found = [System(kind, p) for kind in OURS_KINDS for p in policy_names()]
    notes = []
    for binary, methods in (("nginx", ("round_robin", "least_conn")), ("haproxy", ("roundrobin", "leastconn"))):
        if shutil.which(binary):
            found += [System(binary, m) for m in methods]
        else:
            notes.append(f"{binary} not installed (apt-get install -y {binary}): skipped")
    if only:
        found = [s for s in found if any(word in s.name for word in only)]
    return found, notes


# -- configuration of the proxies (pure) -------------------------------------------------------------


def capacity_weights(fleet: FleetSpec) -> dict[str, int]:
    """Integer weights proportional to slots x speed, the smallest 1 (nginx and HAProxy want
    integers)."""
    smallest = min(r.capacity for r in fleet.replicas)
    return {r.name: max(1, round(r.capacity / smallest)) for r in fleet.replicas}


def nginx_config(port: int, urls: dict[str, str], method: str, workdir: str,
                 weights: dict[str, int] | None = None) -> str:
    servers = "\n".join(
        f"        server {url.removeprefix('http://')}"
        f"{f' weight={weights[name]}' if weights else ''} max_fails=1 fail_timeout=10s;"
        for name, url in urls.items()
    )
    template = string.Template((TEMPLATES / "nginx.conf.template").read_text())
    return template.substitute(
        workdir=workdir, port=port, servers=servers, timeout_s=PROXY_TIMEOUT_S,
        method={"round_robin": "# round robin (the default)", "least_conn": "least_conn;"}[method],
    )


def haproxy_config(port: int, urls: dict[str, str], method: str,
                   weights: dict[str, int] | None = None) -> str:
    servers = "\n".join(
        f"    server {name} {url.removeprefix('http://')}{f' weight {weights[name]}' if weights else ''}"
        for name, url in urls.items()
    )
    template = string.Template((TEMPLATES / "haproxy.cfg.template").read_text())
    return template.substitute(port=port, servers=servers, method=method, timeout_s=PROXY_TIMEOUT_S)


def balancer_command(port: int, urls: dict[str, str], policy: str,
                     weights: dict[str, int] | None = None, data_plane: str = "haproxy") -> list[str]:
    command = [sys.executable, "-m", "mltoolkit.balancer", "--port", str(port), "--policy", policy,
               "--timeout", str(PROXY_TIMEOUT_S), "--data-plane", data_plane]
    for name, url in urls.items():
        command += ["--replica", f"{name}={url}"]
    for name, weight in (weights or {}).items():
        command += ["--weight", f"{name}={weight}"]
    return command


# -- running them (side effects) ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, timeout_s: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


class Proxy:
    """One system as a child process on a loopback port; ``stop()`` ends it (and is idempotent)."""

    def __init__(self, system: System, urls: dict[str, str], weights: dict[str, int] | None) -> None:
        self.system = system
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = tempfile.mkdtemp(prefix=f"balance-{system.kind}-")
        self.log = open(os.path.join(self.workdir, "output.log"), "wb")
        if system.kind in OURS_KINDS:
            command = balancer_command(self.port, urls, system.method, weights, OURS_KINDS[system.kind])
            self.ready_url = self.url + "/-/health"
        elif system.kind == "nginx":
            config = os.path.join(self.workdir, "nginx.conf")
            Path(config).write_text(nginx_config(self.port, urls, system.method, self.workdir, weights))
            command = ["nginx", "-p", self.workdir, "-e", os.path.join(self.workdir, "startup.log"), "-c", config]
            self.ready_url = self.url + "/v2/health/ready"
        else:
            config = os.path.join(self.workdir, "haproxy.cfg")
            Path(config).write_text(haproxy_config(self.port, urls, system.method, weights))
            command = ["haproxy", "-db", "-f", config]
            self.ready_url = self.url + "/v2/health/ready"
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.system.name} exited with {self.process.returncode}: {self.output()}")
            if http_status(self.ready_url) == 200:
                time.sleep(0.6)  # let active health checks mark every replica up
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.system.name} not ready within {timeout_s:g} s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.workdir, "output.log").read_text(errors="replace")[-1500:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def counters(fleet: FleetProcess) -> tuple[np.ndarray, np.ndarray]:
    stats = fleet.stats()
    return (np.array([r["busy_s"] for r in stats]), np.array([r["served"] for r in stats]))


def measured_run(fleet: FleetProcess, spec: FleetSpec, trace: ArrivalTrace, url: str | list[str],
                 seed: int = 0) -> tuple[RunMetrics, pd.DataFrame]:
    """Replay ``trace`` to ``url`` (or to one of several URLs at random per request)."""
    if not fleet.wait_idle(timeout_s=120):
        raise RuntimeError("the fleet did not drain before the run")
    busy0, served0 = counters(fleet)
    requests = replay(trace, url, timeout_s=CLIENT_TIMEOUT_S, seed=seed)
    fleet.wait_idle(timeout_s=120)  # count the work of requests still finishing
    busy1, served1 = counters(fleet)
    slots = [r.slots for r in spec.replicas]
    return measured_metrics(requests, busy1 - busy0, served1 - served0, slots), requests


def generator_check(fleet: FleetProcess, rate_rps: float, duration_s: float = 2.0) -> dict[str, float]:
    """The load generator's measured capacity: zero-cost requests straight to one replica at
    ``rate_rps``; if it keeps that pace with small send lag, it is not the bottleneck."""
    trace = poisson_trace(rate_rps, duration_s, CostDistribution("constant", 1e-9), seed=99)
    trace = ArrivalTrace(trace.times_s, np.zeros(len(trace)))
    frame = replay(trace, next(iter(fleet.urls.values())), timeout_s=30)
    ok = frame["status"] == 200
    span = float((frame["scheduled_s"] + frame["latency_s"])[ok].max() - frame["scheduled_s"].min())
    return {
        "offered_rps": len(trace) / duration_s,
        "answered_rps": float(ok.sum() / span),
        "send_lag_p99_ms": float(frame["send_lag_s"].quantile(0.99) * 1000),
        "latency_p99_ms": float(frame["latency_s"][ok].quantile(0.99) * 1000),
        "errors": int((~ok).sum()),
    }


def steady_state(settings: Settings, spec: FleetSpec, chosen: list[System]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    traces = {
        (load, rep): trace_at_utilization(spec, load, settings.duration_s, seed=settings.seed * 1000 + rep * 10 + i)
        for rep in range(settings.repetitions)
        for i, load in enumerate(settings.loads)
    }
    slots = [r.slots for r in spec.replicas]
    for (load, rep), trace in traces.items():
        rows.append({"system": IDEAL, "load": load, "rep": rep,
                     **ideal_metrics(ideal_for(spec, trace), trace, slots).to_dict()})
    weights = capacity_weights(spec) if settings.weighted else None
    total = len(chosen) * len(traces)
    done = 0
    with FleetProcess(spec) as fleet:
        top_rate = max(settings.loads) * spec.capacity_rps()
        check = generator_check(fleet, 2 * top_rate)
        print(
            f"load generator check: offered {check['offered_rps']:.0f} req/s of zero-cost requests, "
            f"answered {check['answered_rps']:.0f} req/s, send lag p99 {check['send_lag_p99_ms']:.1f} ms, "
            f"latency p99 {check['latency_p99_ms']:.1f} ms, {check['errors']} errors "
            f"(the benchmark's highest rate is {top_rate:.0f} req/s)",
            flush=True,
        )
        if check["answered_rps"] < 0.95 * check["offered_rps"] or check["send_lag_p99_ms"] > LAG_WARNING_MS:
            print("WARNING: the load generator did not keep pace on this machine right now; latencies "
                  "below include its own delays (see send_lag_p99_ms in the runs CSV)", flush=True)
        for rep in range(settings.repetitions):
            # rotate the order so that no system always runs first (or last) on a drifting machine
            order = chosen[rep % len(chosen):] + chosen[: rep % len(chosen)]
            for system in order:
                with Proxy(system, fleet.urls, weights) as proxy:
                    for load in settings.loads:
                        metrics, requests = measured_run(fleet, spec, traces[load, rep], proxy.url)
                        lag = float(requests["send_lag_s"].quantile(0.99) * 1000)
                        rows.append({"system": system.name, "load": load, "rep": rep,
                                     **metrics.to_dict(), "send_lag_p99_ms": lag})
                        done += 1
                        print(f"  [{done}/{total}] {system.name:24s} load {load:.0%} run {rep + 1}: "
                              f"p50 {metrics.p50_ms:7.1f} ms  p99 {metrics.p99_ms:8.1f} ms  "
                              f"errors {metrics.error_rate:.1%}  util CV {metrics.util_cv:.2f}", flush=True)
    return pd.DataFrame(rows)


@dataclass
class FailureRun:
    requests: pd.DataFrame
    sample_times_s: list[float]  # from trace time 0
    arrived: list[dict[str, int]]  # each replica's cumulative requests received, at those times


async def _replay_with_faults(trace: ArrivalTrace, url: str, control: str,
                              faults: list[tuple[float, str, dict[str, Any]]],
                              sample_every_s: float = 0.25) -> FailureRun:
    """Replay ``trace`` while injecting ``faults`` (trace time, control path, body) and sampling
    every replica's ``arrived`` counter from the fleet's control port."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    run = FailureRun(pd.DataFrame(), [], [])
    replaying = True

    async def inject(session: aiohttp.ClientSession) -> None:
        for at_s, path, body in faults:
            await asyncio.sleep(max(0.0, start + at_s - loop.time()))
            async with session.post(control + path, json=body) as response:
                response.raise_for_status()

    async def sample(session: aiohttp.ClientSession) -> None:
        while replaying:
            async with session.get(control + "/replicas") as response:
                stats = (await response.json())["replicas"]
            run.sample_times_s.append(loop.time() - start)
            run.arrived.append({r["name"]: r["arrived"] for r in stats})
            await asyncio.sleep(sample_every_s)

    async with aiohttp.ClientSession() as session:
        sampler = asyncio.ensure_future(sample(session))
        try:
            run.requests, _ = await asyncio.gather(
                replay_async(trace, url, timeout_s=FAILURE_CLIENT_TIMEOUT_S, start_at=start), inject(session)
            )
        finally:
            replaying = False
            await sampler
    return run


def failure_behaviour(settings: Settings, spec: FleetSpec, chosen: list[System]) -> pd.DataFrame:
    """One fast replica 10x slower at 25 % of the run, another dead at 50 %; a fresh fleet each."""
    fast = [r for r in spec.replicas if r.speed == max(x.speed for x in spec.replicas)]
    slowed, killed = spec.replica(fast[1].name), fast[2].name
    duration = settings.failure_duration_s
    slow_at, die_at = 0.25 * duration, 0.5 * duration
    trace = trace_at_utilization(spec, settings.failure_load, duration, seed=settings.seed + 777)
    # Once 10x slower, the replica completes slots x speed / 10 / mean cost requests per second;
    # a balancer has routed around it when it sends no more than twice that (2 s windows).
    slowed_capacity_rps = slowed.capacity / 10 / spec.costs.mean_s
    weights = capacity_weights(spec) if settings.weighted else None
    rows = []
    for system in chosen:
        with FleetProcess(spec) as fleet, Proxy(system, fleet.urls, weights) as proxy:
            run = asyncio.run(_replay_with_faults(trace, proxy.url, fleet.control_url, [
                (slow_at, f"/replicas/{slowed.name}/slowdown", {"factor": 10}),
                (die_at, f"/replicas/{killed}/die", {"mode": "close"}),
            ]))
        requests = run.requests
        ok = requests["status"] == 200
        timed_out = requests["error"].fillna("").str.startswith(TIMEOUT_ERROR)
        after_slow = requests["scheduled_s"] >= slow_at
        # p99 over every request sent after the slowdown; one without an answer counts as infinitely slow
        latency_after = requests["latency_s"][after_slow].where(ok[after_slow], np.inf)
        failed, failing_for = failures_since(requests[~timed_out], die_at, end_s=duration)
        to_slowed = [a[slowed.name] for a in run.arrived]
        received_after = np.interp(duration, run.sample_times_s, to_slowed) - np.interp(slow_at, run.sample_times_s, to_slowed)
        rows.append({
            "system": system.name,
            "slow_reroute_s": reroute_time_s(run.sample_times_s, to_slowed, slow_at,
                                             max_rate_rps=2 * slowed_capacity_rps, end_s=duration),
            "to_slowed_rps": float(received_after / (duration - slow_at)),
            "p99_after_slow_ms": float(np.quantile(latency_after.to_numpy(), 0.99, method="higher") * 1000),
            "timed_out": int(timed_out.sum()),
            "failed": failed,
            "failing_for_s": failing_for,
            "requests": len(requests),
        })
        print(f"  failure run {system.name:24s}: routed around the slowed replica after "
              f"{rows[-1]['slow_reroute_s']:.1f} s, {failed} failed, {int(timed_out.sum())} timed out", flush=True)
    print(f"(slowed {slowed.name} 10x at {slow_at:g} s -- it can then serve {slowed_capacity_rps:.1f} req/s --, "
          f"killed {killed} at {die_at:g} s; load {settings.failure_load:.0%}, {len(trace)} requests. "
          f"slow_reroute_s: from the slowdown until the slowed replica receives at most "
          f"{2 * slowed_capacity_rps:.1f} req/s in every later 2 s window, by its own counter (nan: never); "
          f"to_slowed_rps: what it received after the slowdown; "
          f"p99_after_slow_ms: over requests sent after it, inf if over 1 % got no answer within "
          f"{FAILURE_CLIENT_TIMEOUT_S} s (timed_out); failed: other errors; failing_for_s: from the death "
          f"to the last failed request (nan: still failing at the end))")
    return pd.DataFrame(rows)


RANDOM = "random (kube-proxy)"  # stateless: the same for any number of balancers
SEVERAL_GOAL = 1.3  # issue 11: with 2 and 4 balancers at 90 % load, default p99 <= 1.3x the ideal


def several_name(balancers: int, simulated: bool = False) -> str:
    return f"{'sim ' if simulated else ''}{DEFAULT_POLICY} x{balancers} balancer{'s' if balancers > 1 else ''}"


def several_balancers(settings: Settings, spec: FleetSpec) -> pd.DataFrame:
    """K balancer processes (default policy) behind a random front, random choice, the ideal and
    the simulation of K balancers, on the same traces; one row per system and run."""
    load = settings.several_load
    slots = [r.slots for r in spec.replicas]
    weights = capacity_weights(spec) if settings.weighted else None
    rows: list[dict[str, Any]] = []
    # (name, policy, balancers): measured systems; random is stateless, so one balancer stands for any K
    measured = [(several_name(k), DEFAULT_POLICY, k) for k in settings.balancers] + [(RANDOM, "random", 1)]
    with FleetProcess(spec) as fleet:
        for rep in range(settings.several_repetitions):
            trace = trace_at_utilization(spec, load, settings.several_duration_s,
                                         seed=settings.seed * 1000 + 500 + rep)
            rows.append({"system": IDEAL, "load": load, "rep": rep,
                         **ideal_metrics(ideal_for(spec, trace), trace, slots).to_dict()})
            for k in settings.balancers:
                simulated = simulate_balancers(spec, trace, DEFAULT_POLICY, k, seed=rep)
                rows.append({"system": several_name(k, simulated=True), "load": load, "rep": rep,
                             "balancers": k, **ideal_metrics(simulated, trace, slots).to_dict()})
            order = measured[rep % len(measured):] + measured[: rep % len(measured)]
            for name, policy, k in order:
                with contextlib.ExitStack() as stack:
                    proxies = [stack.enter_context(Proxy(System("ours", policy), fleet.urls, weights))
                               for _ in range(k)]
                    metrics, requests = measured_run(fleet, spec, trace, [p.url for p in proxies], seed=rep)
                lag = float(requests["send_lag_s"].quantile(0.99) * 1000)
                rows.append({"system": name, "load": load, "rep": rep, "balancers": k,
                             **metrics.to_dict(), "send_lag_p99_ms": lag})
                print(f"  several balancers, run {rep + 1}: {name:36s} p50 {metrics.p50_ms:7.1f} ms  "
                      f"p99 {metrics.p99_ms:8.1f} ms  errors {metrics.error_rate:.1%}", flush=True)
    return pd.DataFrame(rows)


def several_goals(table: pd.DataFrame, load: float) -> list[str]:
    """The issue's goal for K = 2 and 4, met or NOT met, from ``summarize``'s table."""
    rows = table[table["load"] == load].set_index("system")
    lines = []
    random_ratio = rows["p99_vs_ideal"].get(RANDOM, float("nan"))
    for k in (2, 4):
        name = several_name(k)
        if name not in rows.index:
            continue
        ratio = rows.at[name, "p99_vs_ideal"]
        verdict = "met" if ratio <= SEVERAL_GOAL else "NOT met"
        lines.append(
            f"goal: {k} balancers at {load:.0%} load, {DEFAULT_POLICY} p99 <= {SEVERAL_GOAL:g}x the ideal: "
            f"{ratio:.2f}x (random choice: {random_ratio:.1f}x) -- {verdict}"
        )
    return lines


BALANCE_GOAL = 1.2  # issue 10: at 90 % load the default policy's p99 <= 1.2x the ideal's
GOAL_LOAD = 0.9
PEERS = ("nginx:least_conn", "haproxy:leastconn")


def p99_over(runs: pd.DataFrame, reference: str) -> pd.Series:
    """Each run's p99 over ``reference``'s on the same trace (load and repetition), aligned with
    ``runs``; NaN where ``reference`` did not run that trace."""
    theirs = runs[runs["system"] == reference].set_index(["load", "rep"])["p99_ms"].rename("reference_p99")
    return runs["p99_ms"] / runs.join(theirs, on=["load", "rep"])["reference_p99"]


def paired_p99_ratios(runs: pd.DataFrame, system: str, peer: str, load: float) -> list[float]:
    """``system``'s p99 over ``peer``'s on each trace both ran, by repetition."""
    mine = runs[(runs["system"] == system) & (runs["load"] == load)].sort_values("rep")
    return [float(ratio) for ratio in p99_over(runs, peer)[mine.index].dropna()]


def paired_cell(peer: str, ratios: list[float]) -> str:
    """``peer median [min-max] over n``; from 5 traces on, with the median's 90 % interval and what
    it says: below, above, or (1 inside it) a tie this run cannot tell apart."""
    cell = f"{peer} {np.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] over {len(ratios)}"
    interval = median_interval(ratios)
    if interval is None:
        return cell
    verdict = ("below" if interval[1] < 1 else "above" if interval[0] > 1
               else "a tie within this run's noise")  # fmt: skip
    return f"{cell}, {INTERVAL_CONFIDENCE:.0%} interval of the median {interval[0]:.2f}-{interval[1]:.2f}: {verdict}"


def balance_goals(table: pd.DataFrame, load: float = GOAL_LOAD, runs: pd.DataFrame | None = None) -> list[str]:
    """Issue 10's balance goal for the default policy on each data plane, met or NOT met: p99 <=
    1.2x the ideal's and below nginx least_conn's and HAProxy leastconn's, at 90 % load. With
    ``runs``, each goal line is followed by the paired view (not the verdict): the system's p99
    over each peer's on the same traces, median [min-max]."""
    rows = table[table["load"] == load].set_index("system")
    lines = []
    for kind in OURS_KINDS:
        name = f"{kind}:{DEFAULT_POLICY}"
        if name not in rows.index:
            continue
        ratio, p99 = rows.at[name, "p99_vs_ideal"], rows.at[name, "p99_ms"]
        peers = {peer: rows.at[peer, "p99_ms"] for peer in PEERS if peer in rows.index}
        below = all(p99 < peer for peer in peers.values())
        verdict = "met" if ratio <= BALANCE_GOAL and below and len(peers) == len(PEERS) else "NOT met"
        shown = ", ".join(f"{peer} {value:.0f} ms" for peer, value in peers.items()) or "no peer measured"
        lines.append(
            f"goal: {name} at {load:.0%} load, p99 <= {BALANCE_GOAL:g}x the ideal and below {' and '.join(PEERS)}: "
            f"{ratio:.2f}x, {p99:.0f} ms ({shown}) -- {verdict}"
        )
        if runs is not None:
            paired = {peer: paired_p99_ratios(runs, name, peer, load) for peer in peers}
            cells = [paired_cell(peer, r) for peer, r in paired.items() if r]
            if cells:
                lines.append(f"  paired, {name}'s p99 over the peer's on the same traces: " + ", ".join(cells))
    return lines


# -- reporting (pure) ---------------------------------------------------------------------------------


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Median and [min, max] over repetitions of each metric, per system and load, with each
    system's p99 relative to the ideal's on the same traces."""
    metrics = ["p50_ms", "p99_ms", "throughput_rps", "error_rate", "util_cv", "served_cv"]
    grouped = runs.groupby(["load", "system"])[metrics]
    table = grouped.median().join(grouped.min().add_suffix("_min")).join(grouped.max().add_suffix("_max"))
    table["p99_vs_ideal"] = p99_over(runs, IDEAL).groupby([runs["load"], runs["system"]]).median()
    table["runs"] = runs.groupby(["load", "system"]).size()
    return table.reset_index().sort_values(["load", "p99_ms"])


def _spread(row: pd.Series, name: str, fmt: str) -> str:
    if row["runs"] > 1:
        return f"{row[name]:{fmt}} [{row[name + '_min']:{fmt}}-{row[name + '_max']:{fmt}}]"
    return f"{row[name]:{fmt}}"


def format_table(table: pd.DataFrame, load: float) -> str:
    rows = table[table["load"] == load]
    lines = [f"load {load:.0%} of fleet capacity",
             f"  {'system':24s} {'p50 ms':>20s} {'p99 ms':>23s} {'p99/ideal':>9s} {'req/s':>7s} "
             f"{'errors':>7s} {'util CV':>17s}"]
    for _, row in rows.iterrows():
        lines.append(
            f"  {row['system']:24s} {_spread(row, 'p50_ms', '.0f'):>20s} {_spread(row, 'p99_ms', '.0f'):>23s} "
            f"{row['p99_vs_ideal']:9.2f} {row['throughput_rps']:7.1f} {row['error_rate']:7.2%} "
            f"{_spread(row, 'util_cv', '.2f'):>17s}"
        )
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p99, ax_cv) = plt.subplots(1, 2, figsize=(13, 5))
    for system, rows in table.groupby("system"):
        rows = rows.sort_values("load")
        style = {"color": "black", "linestyle": "--", "linewidth": 2} if system == IDEAL else {"marker": "o"}
        x = rows["load"] * 100
        ax_p99.errorbar(x, rows["p99_ms"], yerr=[rows["p99_ms"] - rows["p99_ms_min"],
                        rows["p99_ms_max"] - rows["p99_ms"]], label=system, capsize=3, **style)
        ax_cv.errorbar(x, rows["util_cv"], yerr=[rows["util_cv"] - rows["util_cv_min"],
                       rows["util_cv_max"] - rows["util_cv"]], label=system, capsize=3, **style)
    ax_p99.set(xlabel="offered load, % of fleet capacity", ylabel="p99 latency, ms (log)", yscale="log",
               title="p99 latency: median of runs, bars min-max")
    ax_cv.set(xlabel="offered load, % of fleet capacity", ylabel="CV of busy time per slot across replicas",
              title="utilization spread (0 = all equally busy)")
    ax_p99.legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- command line -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run per load, shorter runs: a smoke test")
    parser.add_argument("--loads", default="0.5,0.7,0.9", help="fractions of fleet capacity")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds of arrivals per run")
    parser.add_argument("--slots", type=int, default=2, help="concurrent requests per replica")
    parser.add_argument("--mean-cost-ms", type=float, default=100.0)
    parser.add_argument("--pareto-alpha", type=float, default=2.2, help="tail index of the costs (smaller: heavier)")
    parser.add_argument("--weighted", action="store_true", help="tell every balancer the replicas' capacities")
    parser.add_argument("--no-failure", action="store_true", help="skip the failure-behaviour runs")
    parser.add_argument("--only", default="", help="comma-separated substrings of system names to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-several", action="store_true", help="skip the several-balancers runs")
    parser.add_argument("--several-only", action="store_true",
                        help="only the several-balancers runs (no steady state, no failure runs)")
    parser.add_argument("--balancers", default="1,2,4", help="numbers of balancers for the several-balancers runs")
    parser.add_argument("--several-duration", type=float, default=None,
                        help="seconds of arrivals per several-balancers run (20; --quick 10)")
    parser.add_argument("--several-repetitions", type=int, default=None, help="(2; --quick 1)")
    args = parser.parse_args(argv)
    if args.several_only and args.no_several:
        parser.error("--several-only and --no-several exclude each other")
    try:
        balancers = tuple(int(x) for x in args.balancers.split(","))
    except ValueError:
        parser.error(f"--balancers: {args.balancers!r} is not a comma-separated list of whole numbers such as 1,2,4")
    if not balancers or any(not 1 <= k <= 16 for k in balancers):
        parser.error(f"--balancers: {args.balancers!r}; expected whole numbers from 1 to 16")
    several_duration = args.several_duration if args.several_duration is not None else (10.0 if args.quick else 20.0)
    several_repetitions = (args.several_repetitions if args.several_repetitions is not None
                           else (1 if args.quick else 2))
    if not 2 <= several_duration <= 600:
        parser.error(f"--several-duration: {several_duration}; expected 2 to 600 seconds")
    if several_repetitions < 1:
        parser.error(f"--several-repetitions: {several_repetitions}; expected at least 1")
    try:
        loads = tuple(float(x) for x in args.loads.split(","))
    except ValueError:
        parser.error(f"--loads: {args.loads!r} is not a comma-separated list of fractions such as 0.5,0.9")
    if not loads or any(not 0 < x <= 1.5 for x in loads):
        parser.error(f"--loads: {args.loads!r}; expected fractions of capacity in (0, 1.5]")
    repetitions = args.repetitions if args.repetitions is not None else (1 if args.quick else 3)
    duration = args.duration if args.duration is not None else (2.0 if args.quick else 3.0)
    if repetitions < 1:
        parser.error(f"--repetitions: {repetitions}; expected at least 1")
    if not 0.5 <= duration <= 600:
        parser.error(f"--duration: {duration}; expected 0.5 to 600 seconds")
    settings = Settings(
        loads=loads, repetitions=repetitions, duration_s=duration, slots=args.slots,
        mean_cost_s=args.mean_cost_ms / 1000, pareto_alpha=args.pareto_alpha, seed=args.seed,
        weighted=args.weighted, failure=not (args.no_failure or args.several_only),
        failure_duration_s=6.0 if args.quick else 8.0,
        only=tuple(w for w in args.only.split(",") if w),
        steady=not args.several_only, several=not args.no_several, balancers=balancers,
        several_duration_s=several_duration, several_repetitions=several_repetitions,
    )
    settings.fleet()  # validate the fleet (SpecError names the bad value) before starting anything
    return settings


def warn_lagging(runs: pd.DataFrame) -> None:
    lagging = runs[runs["send_lag_p99_ms"] > LAG_WARNING_MS] if "send_lag_p99_ms" in runs else runs.iloc[:0]
    if len(lagging):
        print(f"WARNING: in {len(lagging)} of {runs['send_lag_p99_ms'].notna().sum()} runs the load generator sent "
              f"late (send lag p99 > {LAG_WARNING_MS:g} ms, worst {lagging['send_lag_p99_ms'].max():.0f} ms): "
              "the machine was short of CPU; treat those numbers with care")


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every fleet and proxy started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spec = settings.fleet()
    chosen, notes = systems(settings.only)
    for note in notes:
        print(f"note: {note}")
    if not chosen:
        print("no system to run", file=sys.stderr)
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    slow = sum(r.speed < 1 for r in spec.replicas)
    describe = (
        f"{len(spec.replicas)} replicas x {settings.slots} slots, {slow} of them {settings.slow_factor:g}x slower; "
        f"Pareto costs (alpha {settings.pareto_alpha:g}, mean {settings.mean_cost_s * 1000:g} ms); "
        f"capacity {spec.capacity_rps():.0f} req/s"
        f"{f'; {settings.repetitions} run(s) x {settings.duration_s:g} s per load' if settings.steady else ''}"
        f"{'; weighted' if settings.weighted else ''}"
    )
    print(f"balance benchmark: {describe}")
    shown = ", ".join(s.name for s in chosen) if settings.steady else "(several balancers only)"
    print(f"systems: {shown}; machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    started = time.monotonic()
    if settings.steady:
        runs = steady_state(settings, spec, chosen)
        runs.to_csv(RESULTS / f"balance-{stamp}-runs.csv", index=False)
        table = summarize(runs)
        table.to_csv(RESULTS / f"balance-{stamp}-summary.csv", index=False)
        print()
        print("median over runs [min-max]; p99/ideal is the median of per-run ratios on the same trace")
        for load in settings.loads:
            print(format_table(table, load))
            print()
        for line in balance_goals(table, runs=runs):
            print(line)
        warn_lagging(runs)
        png = RESULTS / f"balance-{stamp}.png"
        plot(table, png, f"balance benchmark: {describe}")
        print(f"plot: {png.relative_to(HERE.parent)}")
    if settings.several:
        print(f"\nseveral balancers: {', '.join(map(str, settings.balancers))} x {DEFAULT_POLICY} behind a random "
              f"front, {settings.several_repetitions} run(s) x {settings.several_duration_s:g} s at "
              f"{settings.several_load:.0%} load", flush=True)
        several = several_balancers(settings, spec)
        several.to_csv(RESULTS / f"balance-{stamp}-several.csv", index=False)
        several_table = summarize(several)
        print("\nmedian over runs [min-max]; p99/ideal is the median of per-run ratios on the same trace; "
              "'sim' rows: the fleet simulation of the same trace")
        print(format_table(several_table, settings.several_load))
        for line in several_goals(several_table, settings.several_load):
            print(line)
        warn_lagging(several)
    if settings.failure:
        print("\nfailure behaviour")
        failures = failure_behaviour(settings, spec, chosen)
        failures.to_csv(RESULTS / f"balance-{stamp}-failure.csv", index=False)
        print(failures.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\ntook {time.monotonic() - started:.0f} s; machine load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
