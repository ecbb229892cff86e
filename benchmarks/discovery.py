"""Replicas found through Kubernetes: how soon a ready replica gets traffic, and whether a
terminating one fails anything.

Setup, all on 127.0.0.1: the fake Kubernetes API of the tests (tests/balancer/fake_endpointslices.py)
serving the EndpointSlices of Service ``digits``; the balancer's data plane started from this
process (``--data-plane``: haproxy, the default, HAProxy driven through ``HAProxyEngine``; or
python, ``start_server``; default policy) following them (``EndpointSliceFollower`` over
``EngineReplicaSet``, as ``--discover-service`` does); real model-server processes
(``python -m mltoolkit.serving``, the digits model, ``--slowdown`` so requests stay in flight)
behind it; CLIENTS closed-loop clients sending ``/predict`` all the time.

Each repetition:

1. **join** — a fresh replica process starts, then its slice appears (ready). Measured: from the
   update to the first request routed to it (its ``X-Replica``), and to discovery's ``add``.
2. **terminate** — the older replica is deleted as Kubernetes does it: its endpoint turns
   ``terminating`` and it gets SIGTERM at the same moment. Counted: requests sent after the update
   reached the balancer that still went to it (goal 0), failed requests (goal 0), and requests it
   had in flight at the drain (they must finish).

Goals (issue 11): a replica that becomes ready receives traffic within 1 s of its EndpointSlice
update; a terminating one receives no new request after its update and its in-flight requests
finish (0 failed).

Usage: .venv/bin/python benchmarks/discovery.py [--repetitions 5] [--clients 6] [--quick]
       [--data-plane haproxy|python]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import joblib  # noqa: E402

from mltoolkit.balancer import BalancerConfig, ReplicaTarget  # noqa: E402
from mltoolkit.balancer import start_server as start_balancer  # noqa: E402
from mltoolkit.balancer.config import DATA_PLANES, DEFAULT_DATA_PLANE  # noqa: E402
from mltoolkit.balancer.haproxy_plane import HAProxyEngine, start_haproxy_plane  # noqa: E402
from mltoolkit.balancer.discovery import (  # noqa: E402
    DiscoveryConfig,
    EndpointSliceFollower,
    EngineReplicaSet,
    KubeAPIConfig,
)
from mltoolkit.quickstart import train_digits  # noqa: E402
from tests.balancer.fake_endpointslices import NAMESPACE, TOKEN, FakeEndpointSliceAPI, endpoint, endpoint_slice  # noqa: E402
from tests.serving.process import start_server  # noqa: E402

SERVICE = "digits"
JOIN_GOAL_S = 1.0


def slice_of(name: str, url: str, **conditions: bool) -> dict:
    port = int(url.rsplit(":", 1)[1])
    return endpoint_slice(f"digits-{name}", SERVICE, [endpoint("127.0.0.1", name, "node-1", **conditions)], port=port)


class Timed:
    """The data plane's membership calls, noting when decisions reached it: a drain's time is
    when the replica stopped getting new requests (python: before the engine's first await;
    haproxy: once ``disable server`` returned)."""

    def __init__(self, engine: Any, in_flight: Callable[[str], int], stop_routing: Callable[[str], Any]) -> None:
        self.engine = engine
        self.in_flight = in_flight
        self.stop_routing = stop_routing
        self.events: dict[str, float] = {}
        self.in_flight_at_drain: dict[str, int] = {}

    async def add_replica(self, target: ReplicaTarget) -> None:
        await self.engine.add_replica(target)
        self.events[f"add {target.name}"] = asyncio.get_running_loop().time()

    async def drain_replica(self, name: str) -> None:
        self.in_flight_at_drain[name] = self.in_flight(name)
        await self.stop_routing(name)
        self.events[f"drain {name}"] = asyncio.get_running_loop().time()
        await self.engine.drain_replica(name)


async def start_data_plane(data_plane: str, first: ReplicaTarget) -> tuple[str, Timed, Callable[[], Awaitable[None]]]:
    """The balancer's URL, its membership calls (timed), and how to close it."""
    config = BalancerConfig(replicas=(first,), data_plane=data_plane)
    if data_plane == "haproxy":
        plane = await start_haproxy_plane(config)

        def in_flight(name: str) -> int:
            return next((s.scur for s in plane.api.show_stat() if s.name == name), -1)

        async def stop_routing(name: str) -> None:
            await asyncio.to_thread(plane.api.disable_server, name)

        return plane.url, Timed(HAProxyEngine(plane), in_flight, stop_routing), plane.close
    server = await start_balancer(config)
    balancer = server.balancer

    def in_flight_python(name: str) -> int:
        return next((s.in_flight for s in balancer.states if s.name == name), -1)

    async def nothing(name: str) -> None:  # the engine stops routing before its first await
        pass

    return server.url, Timed(balancer, in_flight_python, nothing), server.close


async def run(repetitions: int, clients: int, slowdown: float, model_path: str, workdir: Path,
              data_plane: str) -> list[dict]:
    api = await FakeEndpointSliceAPI().start()
    token = workdir / "token"
    token.write_text(TOKEN)
    loop = asyncio.get_running_loop()

    def replica(name: str):
        return start_server("--model-path", model_path, "--model-name", "digits", "--port", "0", "--host",
                            "127.0.0.1", "--replica-id", name, "--slowdown", str(slowdown), "--no-batching")  # fmt: skip

    current = await asyncio.to_thread(replica, "pod-0")
    api.put(slice_of("pod-0", current.url))
    first = ReplicaTarget("pod-0", current.url, "node-1")
    balancer_url, timed, close_balancer = await start_data_plane(data_plane, first)
    follower = EndpointSliceFollower(
        KubeAPIConfig(url=api.url, namespace=NAMESPACE, token_path=token, ca_path=None),
        DiscoveryConfig(service=SERVICE),
        EngineReplicaSet(timed, (first,)),
    )
    await follower.start()
    url = f"{balancer_url}/predict"
    answers: list[tuple[float, int, str]] = []
    stop = asyncio.Event()
    rows = {"instances": [[0.0] * 64 for _ in range(20)]}

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            sent = loop.time()
            try:
                async with session.post(url, json=rows) as response:
                    await response.read()
                    answers.append((sent, response.status, response.headers.get("X-Replica", "")))
            except aiohttp.ClientError as exc:
                answers.append((sent, 0, type(exc).__name__))

    async def until(condition, timeout_s: float = 60.0) -> None:
        deadline = loop.time() + timeout_s
        while not condition():
            if loop.time() > deadline:
                raise TimeoutError("benchmark step did not happen")
            await asyncio.sleep(0.005)

    results = []
    started = [current]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        try:
            for rep in range(1, repetitions + 1):
                name, old = f"pod-{rep}", f"pod-{rep - 1}"
                fresh = await asyncio.to_thread(replica, name)
                started.append(fresh)
                await until(lambda: len(answers) > 10)
                updated = loop.time()
                api.put(slice_of(name, fresh.url))
                await until(lambda: any(r == name for s, _, r in answers if s >= updated))
                first = min(s for s, _, r in answers if r == name)
                join_s, add_s = first - updated, timed.events[f"add {name}"] - updated
                await until(lambda: timed.in_flight(old) > 0)
                count = len(answers)
                updated = loop.time()
                api.put(slice_of(old, current.url, ready=False, serving=True, terminating=True))
                current.process.send_signal(signal.SIGTERM)
                await until(lambda: f"drain {old}" in timed.events)
                drained = timed.events[f"drain {old}"]
                await until(lambda: current.process.poll() is not None)
                await until(lambda: len(answers) >= count + 20)
                api.delete(f"digits-{old}")
                late = sum(1 for s, _, r in answers if r == old and s >= drained)
                failed = sum(1 for _, status, _ in answers[count:] if status != 200)
                results.append({
                    "join_s": join_s, "add_s": add_s, "drain_s": drained - updated, "late": late,
                    "failed": failed, "in_flight": timed.in_flight_at_drain[old],
                    "exit": current.process.returncode,
                })  # fmt: skip
                current = fresh
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await follower.stop()
            await close_balancer()
            await api.stop()
            for server in started:
                await asyncio.to_thread(server.stop)
    total_failed = sum(1 for _, status, _ in answers if status != 200)
    print(f"requests: {len(answers)}, failed in all: {total_failed}")
    return results


def spread(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):8.1f} ms  [{min(ms):.1f} .. {max(ms):.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--slowdown", type=float, default=30.0, help="replica slowdown: requests stay in flight")
    parser.add_argument("--quick", action="store_true", help="2 repetitions")
    parser.add_argument("--data-plane", choices=DATA_PLANES, default=DEFAULT_DATA_PLANE)
    args = parser.parse_args()
    repetitions = 2 if args.quick else args.repetitions
    with tempfile.TemporaryDirectory() as workdir:
        model_path = str(Path(workdir) / "digits.joblib")
        joblib.dump(train_digits()[0], model_path)
        results = asyncio.run(run(repetitions, args.clients, args.slowdown, model_path, Path(workdir),
                                  args.data_plane))  # fmt: skip
    print(f"\n{repetitions} repetitions, {args.clients} clients, {args.data_plane} data plane; median [min .. max]")
    print(f"ready -> first request routed to it   {spread([r['join_s'] for r in results])}")
    print(f"ready -> discovery's add               {spread([r['add_s'] for r in results])}")
    print(f"terminating -> drained (no new request){spread([r['drain_s'] for r in results])}")
    late = sum(r["late"] for r in results)
    failed = sum(r["failed"] for r in results)
    in_flight = [r["in_flight"] for r in results]
    print(f"requests to a terminating replica sent after its drain: {late}")
    print(f"failed requests around terminations: {failed}; in flight at each drain: {in_flight}; "
          f"exit codes: {[r['exit'] for r in results]}")  # fmt: skip
    worst_join = max(r["join_s"] for r in results)
    print(f"\ngoal: ready replica gets traffic within {JOIN_GOAL_S:g} s (worst {worst_join * 1000:.1f} ms): "
          f"{'met' if worst_join <= JOIN_GOAL_S else 'NOT met'}")  # fmt: skip
    print(f"goal: no new request to a terminating replica, 0 failed: {'met' if late == 0 and failed == 0 else 'NOT met'}")


if __name__ == "__main__":
    main()
