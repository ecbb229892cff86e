"""What a balancer costs: added latency and maximum throughput of mltoolkit's balancer against
nginx and HAProxy (round robin and least connections), and against calling a replica directly.

    .venv/bin/python benchmarks/balancer.py                    # both upstreams, 3 rounds of 10 s
    .venv/bin/python benchmarks/balancer.py --quick            # 1 round of 2 s: a smoke test
    .venv/bin/python benchmarks/balancer.py --upstream model   # only in front of 2 model servers
    .venv/bin/python benchmarks/balancer.py --upstream model --wrk-on replicas  # wrk beside them
    .venv/bin/python benchmarks/balancer.py --repetitions 4 --duration 5 --only ewma least_conn leastconn  # the goal run, ~15 min

Each balancer runs as one process with one thread, pinned to core 1. With the static upstream
wrk shares core 0 with it; with model servers wrk runs on core 1 beside the balancer, so the
replicas have core 0 to themselves, direct or not (``--wrk-on`` sets one core for both). By
default the replicas are a trivial fast upstream (one nginx process answering a fixed
prediction on 4 ports), so what a balancer adds is its own cost; ``--upstream model`` puts real
model servers (mltoolkit.serving, batching on) behind it instead; ``--upstream both`` (the
default) runs the static phase, then the model phase, in one run. With model servers,
``direct fleet`` is one wrk per replica at once (the connections split between them): what the
replicas serve together without a balancer. It runs before every system and after the last of
each round, and, while each system still runs after its measurements, ``--fleet-pairs`` (4) more
times, each followed by a 2 s run of the system at 64 connections. The fleet goal sets each of the
system's runs at 64 connections against the fleet runs just before and after it (the machine
drifts within a round) and prints their median with a 90 % interval of it; the table's row shows
each round's median fleet run. Every request
is the 1-row ``POST /predict`` body. Per round, each system in turn (alternating order): start
it, check that answers through it are the replicas' answers, warm up, then wrk with 1
connection (added latency, against ``direct`` in the same round) and 64 connections (maximum
throughput), then stop it.
Medians over rounds with [min-max]; raw runs go to benchmarks/results/balancer-*-runs.csv.
``CPU us/req``: the CPU time (user + system) of the system's processes, every thread and child
(HAProxy under our controller, nginx's workers), during the run, per request answered.
The benchmark ends with issue 10's goal lines for mltoolkit's default policy (met / NOT met):
req/s at 64 connections >= 50% of nginx least_conn's, added p50 and p99 at 1 connection <= 2x
nginx's (static upstream), and the model fleet through it >= 90% of the fleet served directly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from peers.balancer_report import (  # noqa: E402
    FleetTimeline,
    balancer_cells,
    balancer_table,
    fleet_goal,
    static_goals,
)
from peers.output import log, machine_line, one_line, save_results  # noqa: E402
from peers.processes import (  # noqa: E402
    ServerFailed,
    ServerProcess,
    free_port,
    free_ports,
    group_cpu_s,
    http_request,
    pinned,
    raise_keyboard_interrupt_on_sigterm,
)
from peers.proxies import (  # noqa: E402
    DIRECT,
    DIRECT_FLEET,
    HAPROXY_LEAST,
    NGINX_LEAST,
    OURS,
    Balancer,
    balancer_command,
    select_balancers,
    upstream_config,
)
from peers.results import Cell, Results  # noqa: E402
from peers.servers import BLAS_ENV, MODEL_NAME, request_body  # noqa: E402
from peers.wrk import WrkError, WrkResult, run_wrk  # noqa: E402

RESULTS_DIR = HERE / "results"
READY_PATH = "/v2/health/ready"
PREDICT_PATH = "/predict"


@dataclass(frozen=True)
class Settings:
    repetitions: int = 3
    duration_s: int = 10
    warmup_s: int = 2
    connections: tuple[int, ...] = (1, 64)
    upstream: str = "both"
    replicas: int | None = None  # None: 4 static, 2 model
    balancer_cpu: int = 1
    load_cpu: int = 0
    wrk_on: str | None = None  # "replicas" or "balancer"; None: each phase's own (WRK_ON)
    only: tuple[str, ...] = ()
    fleet_pairs: int = 4  # model phase: short runs of each system, each after a direct fleet run

    @property
    def fleet_slice_s(self) -> int:
        return min(FLEET_SLICE_S, self.duration_s)

    @property
    def client_cpu(self) -> int:
        return self.balancer_cpu if self.wrk_on == "balancer" else self.load_cpu


# Where wrk runs in each phase unless --wrk-on says. Static: beside the trivial upstream, so the
# balancer has core 1 to itself and what it adds is its own cost. Model: beside the balancer, so
# the model servers have core 0 to themselves both direct and through a balancer, as on nodes of
# their own. With wrk on the replicas' core, the direct fleet's requests arrive on the core that
# serves them, in the bursts of wrk's own loop, while any balancer's arrive from the other core:
# the batching servers merge fewer requests per call, and the fleet through plain nginx or HAProxy
# drops to 0.74-0.87x, a cost of the placement, not of a balancer (benchmarks/README.md).
WRK_ON = {"static": "replicas", "model": "balancer"}
# The fleet goal's extra runs (model phase): after its measurements, each system runs this long at
# the most connections, each time right after a direct fleet run as long, ``fleet_pairs`` times.
# The ratio to the fleet moves ~0.1 from one run to the next on this machine, from the host, not
# the balancer; more short runs narrow the median's interval faster than fewer long ones (sd 0.098
# at 2 s against 0.076 at 5 s, with the same median, 28 pairs of each: benchmarks/README.md).
FLEET_SLICE_S = 2


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per cell: a smoke test")
    parser.add_argument("--repetitions", type=int, help="rounds (default 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 10)")
    parser.add_argument("--upstream", choices=("static", "model", "both"), default="both",
                        help="static: a trivial fast nginx upstream; model: our model servers; "
                             "both (default): one after the other")
    parser.add_argument("--replicas", type=int,
                        help="replicas behind the balancer (default 4 static, 2 model)")
    parser.add_argument("--wrk-on", choices=("replicas", "balancer"),
                        help="the core wrk runs on in both phases: the replicas' (core 0) or the "
                             "balancer's (core 1); default: replicas' with the static upstream, "
                             "balancer's with model servers")
    parser.add_argument("--fleet-pairs", type=int,
                        help="model phase: after each system's measurements, this many more "
                             f"{FLEET_SLICE_S} s runs of it at the most connections, each right after a "
                             "direct fleet run, for the fleet goal (default 4; 1 with --quick)")
    parser.add_argument("--only", nargs="+", default=[],
                        help="balancers whose name contains any of these words (direct always runs)")
    args = parser.parse_args(argv)  # fmt: skip
    base = Settings(repetitions=1, duration_s=2, warmup_s=1, fleet_pairs=1) if args.quick else Settings()
    settings = Settings(
        repetitions=base.repetitions if args.repetitions is None else args.repetitions,
        duration_s=base.duration_s if args.duration is None else args.duration,
        warmup_s=base.warmup_s,
        upstream=args.upstream,
        replicas=args.replicas,
        only=tuple(args.only),
        wrk_on=args.wrk_on,
        fleet_pairs=base.fleet_pairs if args.fleet_pairs is None else args.fleet_pairs,
    )
    for name, value, low, high in (("--repetitions", settings.repetitions, 1, 100),
                                   ("--fleet-pairs", settings.fleet_pairs, 0, 50),
                                   ("--duration", settings.duration_s, 1, 3600),
                                   ("--replicas", settings.replicas, 1, 16)):  # fmt: skip
        if value is not None and not low <= value <= high:
            parser.error(f"{name} must be from {low} to {high}; got {value}")
    try:
        select_balancers(settings.only)
    except ValueError as exc:
        parser.error(str(exc))
    return settings


def phase_settings(settings: Settings, upstream: str) -> Settings:
    """The settings of one phase: one upstream kind, its replica count and wrk's core decided."""
    replicas = settings.replicas or (4 if upstream == "static" else 2)
    return replace(settings, upstream=upstream, replicas=replicas,
                   wrk_on=settings.wrk_on or WRK_ON[upstream])


class Upstreams:
    """The replicas every system talks to, started once for the whole run on the load core."""

    def __init__(self, settings: Settings, rundir: Path) -> None:
        self.processes: list[ServerProcess] = []
        self.rundir = rundir
        self.body_file = rundir / "predict-1.json"
        self.settings = settings

    def start(self) -> dict[str, str]:
        """Start the replicas; their URLs by name."""
        from sklearn.datasets import load_digits

        X, _ = load_digits(return_X_y=True)
        self.body_file.write_text(json.dumps(request_body("predict", X[:1])))
        names = [f"r{i}" for i in range(self.settings.replicas)]
        ports = dict(zip(names, free_ports(len(names))))
        cpu = self.settings.load_cpu
        if self.settings.upstream == "static":
            config = self.rundir / "upstream.conf"
            config.write_text(upstream_config(ports, str(self.rundir)))
            command = pinned(["nginx", "-p", str(self.rundir), "-c", str(config)], cpu)
            self.processes.append(ServerProcess("upstream nginx", command, self.rundir / "upstream.log"))
        else:
            import joblib
            from mltoolkit.quickstart import train_digits

            model_path = self.rundir / "digits.joblib"
            joblib.dump(train_digits()[0], model_path)
            for name, port in ports.items():
                command = [sys.executable, "-m", "mltoolkit.serving", "--model-path", str(model_path),
                           "--model-name", MODEL_NAME, "--port", str(port), "--replica-id", name]  # fmt: skip
                self.processes.append(ServerProcess(
                    f"replica {name}", pinned(command, cpu), self.rundir / f"{name}.log",
                    env={**os.environ, **BLAS_ENV},
                ))  # fmt: skip
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for i, url in enumerate(urls.values()):
            owner = self.processes[0] if self.settings.upstream == "static" else self.processes[i]
            owner.wait_ready(url + READY_PATH)
        return urls

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def check_answers(url: str, direct_url: str, body: bytes, replicas: int) -> set[str]:
    """Requests through the system are answered as the replica answers; the replicas seen."""
    expected = http_request(direct_url + PREDICT_PATH, body)
    if expected.status != 200:
        raise ServerFailed(f"the replica itself answered {expected.status}: {expected.body[:300]!r}")
    seen = set()
    for _ in range(2 * replicas):
        answer = http_request(url + PREDICT_PATH, body)
        if answer.status != 200 or answer.body != expected.body:
            raise ServerFailed(f"through the balancer: {answer.status} {answer.body[:300]!r}; "
                               f"the replica answers {expected.body[:300]!r}")
        seen.add(answer.headers.get("x-replica", "?"))
    return seen


def measure(label: str, url: str, repetition: int, settings: Settings, body_file: Path,
            results: Results, group: int | None = None) -> None:
    """wrk at each connection count; with the system's process ``group``, also the CPU it ran
    per request meanwhile (all its processes and threads)."""
    if settings.warmup_s > 0:
        run_wrk(url, max(settings.connections), settings.warmup_s, body_file=body_file,
                cpu=settings.client_cpu)  # fmt: skip
    for conns in settings.connections:
        cpu_before = group_cpu_s(group) if group is not None else 0.0
        result = run_wrk(url, conns, settings.duration_s, body_file=body_file, cpu=settings.client_cpu)
        if group is not None and result.requests > 0:
            cpu_us = (group_cpu_s(group) - cpu_before) / result.requests * 1e6
            result = replace(result, cpu_us_per_request=cpu_us)
        results.add(Cell(label, 1, conns), repetition, result)
        cpu = f", CPU {result.cpu_us_per_request:.1f} us/req" if result.cpu_us_per_request is not None else ""
        log(f"  {label}, {conns} conns: {result.requests_per_s:.0f} req/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, errors {result.errors}{cpu}")


def measure_fleet(urls: Sequence[str], settings: Settings, body_file: Path) -> WrkResult:
    """Every replica called directly at once, one wrk each, the connections split between them;
    the run adds their req/s, and takes the worst p50/p99 of them."""
    conns = max(settings.connections)
    per = [conns // len(urls) + (1 if i < conns % len(urls) else 0) for i in range(len(urls))]
    with ThreadPoolExecutor(len(urls)) as pool:
        runs = list(pool.map(
            lambda pair: run_wrk(pair[0] + PREDICT_PATH, pair[1], settings.duration_s,
                                 body_file=body_file, cpu=settings.client_cpu),
            [(url, n) for url, n in zip(urls, per) if n > 0],
        ))  # fmt: skip
    duration = max(r.duration_s for r in runs)
    result = WrkResult(
        requests=round(sum(r.requests_per_s for r in runs) * duration), duration_s=duration,
        p50_ms=max(r.p50_ms for r in runs), p90_ms=max(r.p90_ms for r in runs),
        p99_ms=max(r.p99_ms for r in runs), mean_ms=max(r.mean_ms for r in runs),
        max_ms=max(r.max_ms for r in runs), status_errors=sum(r.status_errors for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
    )  # fmt: skip
    log(f"  {DIRECT_FLEET.label}, {conns} conns over {len(runs)} replicas: "
        f"{result.requests_per_s:.0f} req/s, errors {result.errors}")
    return result


def run_system(balancer: Balancer, repetition: int, replicas: dict[str, str], settings: Settings,
               rundir: Path, body_file: Path, results: Results,
               then: Callable[[str], None] | None = None) -> None:
    """Start ``balancer`` (not for ``direct``), check it, measure it, call ``then`` with its
    predict URL while it still runs, stop it (always). The direct fleet is not a system here:
    ``run_round`` runs it between the systems (and in ``then``)."""
    direct_url = next(iter(replicas.values()))
    log(f"round {repetition + 1}: {balancer.label}")
    if balancer == DIRECT:
        measure(balancer.label, direct_url + PREDICT_PATH, repetition, settings, body_file, results)
        return
    port = free_port()
    command = pinned(balancer_command(balancer, port, replicas, rundir), settings.balancer_cpu)
    url = f"http://127.0.0.1:{port}"
    log_path = rundir / f"{balancer.kind}-{balancer.method}.log"
    with ServerProcess(balancer.label, command, log_path, cwd=rundir) as process:
        process.wait_ready(url + READY_PATH)
        seen = check_answers(url, direct_url, body_file.read_bytes(), len(replicas))
        log(f"  answers correct; replicas seen in {2 * len(replicas)} requests: {sorted(seen)}")
        group = process.process.pid if process.process is not None else None  # its own session
        measure(balancer.label, url + PREDICT_PATH, repetition, settings, body_file, results, group)
        if process.process is not None and process.process.poll() is not None:
            raise ServerFailed(f"{balancer.label} exited during the measurements:\n{process.log_tail()}")
        if then is not None:
            then(url + PREDICT_PATH)


def run_round(order: Sequence[Balancer], repetition: int, replicas: dict[str, str],
              settings: Settings, rundir: Path, body_file: Path, results: Results,
              timeline: FleetTimeline | None) -> None:
    """Every system in ``order``; with a ``timeline``, the direct fleet before each and after the
    last, and while each system still runs, ``fleet_pairs`` short runs of it, each right after a
    direct fleet run as long; the round's median fleet run into ``results`` for the table."""
    many = max(settings.connections)

    def failed(label: str, exc: Exception) -> None:
        log(f"{label} failed: {exc}")
        results.note(label, f"round {repetition + 1}: {one_line(exc)}")

    def fleet(duration_s: int = settings.duration_s) -> None:
        log(f"round {repetition + 1}: {DIRECT_FLEET.label}")
        try:
            timeline.add(DIRECT_FLEET.label, repetition,
                         measure_fleet(list(replicas.values()), replace(settings, duration_s=duration_s), body_file))
        except (WrkError, subprocess.SubprocessError) as exc:
            failed(DIRECT_FLEET.label, exc)

    def pairs(label: str, url: str) -> None:
        """Into the timeline: the system's run at the most connections, then ``fleet_pairs``
        short ones, each right after a direct fleet run as long."""
        if run := results.runs.get(Cell(label, 1, many), {}).get(repetition):
            timeline.add(label, repetition, run)
        for _ in range(settings.fleet_pairs):
            fleet(settings.fleet_slice_s)
            run = run_wrk(url, many, settings.fleet_slice_s, body_file=body_file, cpu=settings.client_cpu)
            timeline.add(label, repetition, run)
            log(f"  {label}, {many} conns, {settings.fleet_slice_s} s: {run.requests_per_s:.0f} req/s")

    for balancer in order:
        if timeline is not None:
            fleet()
        try:
            run_system(balancer, repetition, replicas, settings, rundir, body_file, results,
                       then=partial(pairs, balancer.label) if timeline is not None else None)  # fmt: skip
        except (ServerFailed, WrkError, subprocess.SubprocessError) as exc:
            failed(balancer.label, exc)
    if timeline is not None:
        fleet()
        if (median_run := timeline.fleet_run(repetition)) is not None:
            results.add(Cell(DIRECT_FLEET.label, 1, many), repetition, median_run)


def available(balancers: Sequence[Balancer], results: Results) -> list[Balancer]:
    """The balancers whose program is installed; a note for each missing one."""
    runnable = []
    for balancer in balancers:
        if balancer.kind in ("nginx", "haproxy") and shutil.which(balancer.kind) is None:
            results.note(balancer.label, f"not run: {balancer.kind} is not installed "
                                         f"(apt-get install -y {balancer.kind})")
        else:
            runnable.append(balancer)
    return runnable


def cells(balancers: Sequence[Balancer], settings: Settings) -> list[Cell]:
    """The table's rows: every system at every connection count, the direct fleet only at the most."""
    rows = balancer_cells([b for b in balancers if b != DIRECT_FLEET], settings.connections)
    if DIRECT_FLEET in balancers:
        rows.insert(len(settings.connections), Cell(DIRECT_FLEET.label, 1, max(settings.connections)))
    return rows


def phase_systems(balancers: Sequence[Balancer], upstream: str) -> list[Balancer]:
    """With model servers the direct fleet joins, right after direct (it runs between the
    systems, see ``run_phase``)."""
    if upstream != "model":
        return list(balancers)
    return [balancers[0], DIRECT_FLEET, *balancers[1:]]


def goal_lines(phase_results: dict[str, Results], timeline: FleetTimeline, settings: Settings) -> list[str]:
    lines = []
    if "static" in phase_results:
        lines += static_goals(phase_results["static"], OURS, NGINX_LEAST, settings.connections)
    if "model" in phase_results:
        lines.append(fleet_goal(timeline, OURS, settings.connections, peers=(NGINX_LEAST, HAPROXY_LEAST)))
    return lines


def report(results: Results, balancers: Sequence[Balancer], settings: Settings, started: str,
           finished: str) -> str:
    upstream = (
        f"{settings.replicas} replicas of a trivial fast upstream (one nginx process, a fixed answer)"
        if settings.upstream == "static"
        else f"{settings.replicas} mltoolkit model servers (batching on)"
    )
    lines = [
        f"Balancer benchmark: {settings.repetitions} round(s) of {settings.duration_s} s per cell "
        f"after a {settings.warmup_s} s warm-up; in front of {upstream}",
        (f"balancer on core {settings.balancer_cpu}; wrk (1 thread) and the replicas on core "
         f"{settings.load_cpu}; 1-row POST /predict" if settings.wrk_on == "replicas" else
         f"balancer and wrk (1 thread) on core {settings.client_cpu}; the replicas alone on core "
         f"{settings.load_cpu}; 1-row POST /predict"),
        f"machine at start: {started}; at end: {finished}",
        "req/s, p50, p99 (wrk, closed loop): median [min-max] over rounds; 'added' latency and "
        "'x direct' are paired with calling one replica directly in the same round",
        "",
        balancer_table(results, cells(balancers, settings)),
    ]
    if settings.upstream == "static":
        lines += ["", "At 64 connections 'direct' is the ceiling of wrk and the upstream sharing "
                      "core 0; a balancer near it is limited by them, not by itself."]
    if results.notes:
        lines += ["", "Notes:"]
        for label, messages in results.notes.items():
            lines += [f"  {label}: {message}" for message in messages]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if settings.upstream != "model" and shutil.which("nginx") is None:
        missing.append("nginx")
    if missing:
        sys.exit(f"needs {', '.join(missing)} (apt-get install -y wrk util-linux nginx)")
    raise_keyboard_interrupt_on_sigterm()
    balancers = select_balancers(settings.only)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    phases = ("static", "model") if settings.upstream == "both" else (settings.upstream,)
    texts: list[str] = []
    phase_results: dict[str, Results] = {}
    timeline = FleetTimeline()
    interrupted = False
    for upstream in phases:
        phase = phase_settings(settings, upstream)
        results = Results()
        systems = phase_systems(balancers, upstream)
        text, interrupted = run_phase(phase, systems, results, stamp, timeline)
        texts.append(text)
        phase_results[upstream] = results
        if interrupted:
            break
    goals = goal_lines(phase_results, timeline, settings)
    if OURS not in balancers or NGINX_LEAST not in balancers:
        goals.append(f"goals need {OURS.label!r} and {NGINX_LEAST.label!r}: leave them in --only")
    print("\n\n".join(texts))
    print("\n" + "\n".join(goals))
    return 130 if interrupted else 0


def run_phase(settings: Settings, balancers: Sequence[Balancer], results: Results, stamp: str,
              timeline: FleetTimeline) -> tuple[str, bool]:
    """Start the upstreams, measure every system in rounds, stop everything; (report, interrupted).
    With the direct fleet among ``balancers``, it runs before every system and after the last of
    each round, into ``timeline``; the table's row takes each round's median run."""
    runnable = available(balancers, results)
    between = DIRECT_FLEET in runnable
    systems = [b for b in runnable if b != DIRECT_FLEET]
    started = machine_line()
    log(f"{settings.upstream} upstream; machine: {started}")
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="balancer-bench-") as tmp:
        rundir = Path(tmp)
        upstreams = Upstreams(settings, rundir)
        try:
            replicas = upstreams.start()
            for repetition in range(settings.repetitions):
                order = systems if repetition % 2 == 0 else list(reversed(systems))
                run_round(order, repetition, replicas, settings, rundir, upstreams.body_file,
                          results, timeline if between else None)  # fmt: skip
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: every process started has been stopped; partial results follow")
        except ServerFailed as exc:
            log(f"the replicas did not start: {exc}")
            results.note("replicas", f"did not start: {one_line(exc)}")
        finally:
            upstreams.stop()
    text = report(results, balancers, settings, started, machine_line())
    if results.runs:
        csv_path = save_results(results, text, RESULTS_DIR, f"balancer-{settings.upstream}-{stamp}")
        log(f"raw runs: {csv_path}")
    return text, interrupted


if __name__ == "__main__":
    sys.exit(main())
