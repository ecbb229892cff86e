"""Replicas found through Kubernetes: EndpointSlices folded into endpoints, decisions, and the
list/watch follower against a fake API server (tests/balancer/fake_endpointslices.py), first with a
recording data plane, then with the real balancer and real model-server processes behind it."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from mltoolkit.balancer import ReplicaTarget
from mltoolkit.balancer import discovery as discovery_module
from mltoolkit.balancer.discovery import (
    Backoff,
    Decision,
    DiscoveryConfig,
    DiscoveryError,
    Endpoint,
    EndpointSliceFollower,
    KubeAPIConfig,
    decisions,
    endpoints_from_slices,
)
from mltoolkit.balancer.discovery import EngineReplicaSet
from mltoolkit.errors import SpecError

from .fake_endpointslices import NAMESPACE, TOKEN, FakeEndpointSliceAPI, endpoint, endpoint_slice
from .fakes import needs_haproxy, wait_until

pytestmark = pytest.mark.anyio

SERVICE = "digits"


# -- endpoints from slices (pure) ------------------------------------------------------------------


def test_slices_fold_into_endpoints_with_conditions_node_and_pod():
    slices = [
        endpoint_slice("digits-abc", SERVICE, [
            endpoint("10.8.0.5", "digits-7d9f-aaaaa", "gke-node-1"),
            endpoint("10.8.1.6", "digits-7d9f-bbbbb", "gke-node-2", ready=False),
            endpoint("10.8.2.7", "digits-7d9f-ccccc", "gke-node-3", ready=False, serving=True, terminating=True),
        ], port=8080),  # fmt: skip
    ]
    found = endpoints_from_slices(slices)
    assert found == {
        "digits-7d9f-aaaaa": Endpoint("digits-7d9f-aaaaa", "10.8.0.5", 8080, "gke-node-1", True, True, False),
        "digits-7d9f-bbbbb": Endpoint("digits-7d9f-bbbbb", "10.8.1.6", 8080, "gke-node-2", False, False, False),
        "digits-7d9f-ccccc": Endpoint("digits-7d9f-ccccc", "10.8.2.7", 8080, "gke-node-3", False, True, True),
    }
    assert [e.routable for e in found.values()] == [True, False, False]
    assert found["digits-7d9f-aaaaa"].target() == ReplicaTarget("digits-7d9f-aaaaa", "http://10.8.0.5:8080", "gke-node-1")


def test_absent_conditions_mean_ready_and_not_terminating():
    item = endpoint("10.8.0.5", "p", "n", ready=None, serving=None, terminating=None)
    item["conditions"] = {}
    (found,) = endpoints_from_slices([endpoint_slice("s", SERVICE, [item], port=8080)]).values()
    assert (found.ready, found.serving, found.terminating) == (True, True, False)


def test_only_the_named_port_and_ip_slices_count():
    other_port = endpoint_slice("s1", SERVICE, [endpoint("10.0.0.1", "a", "n")], port=9090, port_name="metrics")
    fqdn = endpoint_slice("s2", SERVICE, [endpoint("10.0.0.2", "b", "n")], port=8080)
    fqdn["addressType"] = "FQDN"
    good = endpoint_slice("s3", SERVICE, [endpoint("10.0.0.3", "c", "n")], port=8080)
    assert list(endpoints_from_slices([other_port, fqdn, good])) == ["c"]
    # port_name None: a slice's only port, whatever its name
    assert sorted(endpoints_from_slices([other_port, good], port_name=None)) == ["a", "c"]


def test_an_endpoint_in_two_slices_is_taken_in_its_usable_state_and_ipv6_gets_brackets():
    stale = endpoint_slice("s1", SERVICE, [endpoint("10.0.0.1", "a", "n", ready=False)], port=8080)
    fresh = endpoint_slice("s2", SERVICE, [endpoint("10.0.0.1", "a", "n")], port=8080)
    assert endpoints_from_slices([stale, fresh])["a"].routable
    assert endpoints_from_slices([fresh, stale])["a"].routable
    v6 = endpoint_slice("s3", SERVICE, [endpoint("fd00::7", "b", "n")], port=8080)
    v6["addressType"] = "IPv6"
    assert endpoints_from_slices([v6])["b"].url == "http://[fd00::7]:8080"


# -- decisions (pure) ------------------------------------------------------------------------------


def ep(name: str, *, ready: bool = True, terminating: bool = False, address: str = "10.0.0.1") -> Endpoint:
    return Endpoint(name, address, 8080, "node-1", ready=ready, serving=ready or terminating, terminating=terminating)


def test_decisions_add_drain_and_remove():
    before = {"a": ep("a"), "b": ep("b"), "c": ep("c"), "d": ep("d", ready=False), "e": ep("e")}
    after = {
        "a": ep("a"),  # unchanged: nothing
        "b": ep("b", ready=False, terminating=True),  # terminating: drain
        "c": ep("c", ready=False),  # not ready any more: drain
        "d": ep("d"),  # became ready: add
        "f": ep("f"),  # new and ready: add
        "g": ep("g", ready=False),  # new, not ready yet: nothing
        # e is gone: remove
    }
    assert decisions(before, after) == [
        Decision("add", "d", ep("d").target()),
        Decision("add", "f", ep("f").target()),
        Decision("drain", "b"),
        Decision("drain", "c"),
        Decision("remove", "e"),
    ]


def test_a_replica_at_a_new_address_is_added_again_and_a_drained_one_comes_back():
    assert decisions({"a": ep("a")}, {"a": ep("a", address="10.0.0.9")}) == [
        Decision("add", "a", ep("a", address="10.0.0.9").target())
    ]
    assert decisions({"a": ep("a", ready=False)}, {"a": ep("a")}) == [Decision("add", "a", ep("a").target())]
    assert decisions({"a": ep("a", ready=False)}, {"a": ep("a", ready=False, terminating=True)}) == []


# -- configuration ---------------------------------------------------------------------------------


def test_configuration_errors_name_the_field():
    with pytest.raises(SpecError, match="DiscoveryConfig.service"):
        DiscoveryConfig(service="Digits_Model")
    with pytest.raises(SpecError, match="DiscoveryConfig.port_name"):
        DiscoveryConfig(service=SERVICE, port_name="HTTP PORT")
    with pytest.raises(SpecError, match="DiscoveryConfig.backoff_max_s"):
        DiscoveryConfig(service=SERVICE, backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(SpecError, match="KubeAPIConfig.namespace"):
        KubeAPIConfig(url="https://10.0.0.1:443", namespace="Not/A/Namespace")
    assert DiscoveryConfig(service=SERVICE).label_selector == "kubernetes.io/service-name=digits"


def test_in_cluster_config_reads_the_pod_environment(tmp_path: Path):
    (tmp_path / "token").write_text("tok-1\n")
    (tmp_path / "ca.crt").write_text("not read here")
    (tmp_path / "namespace").write_text("mltoolkit")
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    api = KubeAPIConfig.in_cluster(environ=environ, service_account_dir=tmp_path)
    assert (api.url, api.namespace) == ("https://10.96.0.1:443", "mltoolkit")
    assert api.headers()["Authorization"] == "Bearer tok-1"
    (tmp_path / "token").write_text("tok-2")  # the kubelet rotated it: the next request uses it
    assert api.headers()["Authorization"] == "Bearer tok-2"
    assert KubeAPIConfig.in_cluster("other", environ=environ, service_account_dir=tmp_path).namespace == "other"
    with pytest.raises(DiscoveryError, match="KUBERNETES_SERVICE_HOST"):
        KubeAPIConfig.in_cluster(environ={}, service_account_dir=tmp_path)
    (tmp_path / "token").unlink()
    with pytest.raises(DiscoveryError, match="automountServiceAccountToken"):
        KubeAPIConfig.in_cluster(environ=environ, service_account_dir=tmp_path)


def test_backoff_doubles_with_jitter_up_to_the_maximum_and_resets():
    backoff = Backoff(0.5, 4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 4, 4]):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.5


# -- the data plane's side: EngineReplicaSet over an engine with the data plane's semantics ------------


class FakeEngine:
    """Membership calls as the data plane's engine has them: a name in use is an error; a drain
    returns once the replica's requests in flight have finished (here: when the test says)."""

    def __init__(self, *names: str) -> None:
        self.names = set(names)
        self.calls: list[tuple[str, str]] = []
        self.in_flight: dict[str, asyncio.Event] = {}

    async def add_replica(self, target: ReplicaTarget) -> None:
        if target.name in self.names:
            raise ValueError(f"replica name {target.name!r} is already in use")
        self.calls.append(("add", target.url))
        self.names.add(target.name)

    async def drain_replica(self, name: str) -> None:
        if name not in self.names:
            raise ValueError(f"no replica named {name!r}")
        self.calls.append(("drain", name))
        if name in self.in_flight:
            await self.in_flight[name].wait()
        self.names.discard(name)
        self.calls.append(("drained", name))


def target(name: str, port: int = 8080) -> ReplicaTarget:
    return ReplicaTarget(name, f"http://10.0.0.1:{port}", "node-1")


async def test_engine_replica_set_is_idempotent_and_orders_each_replicas_operations():
    engine = FakeEngine("a")
    replicas = EngineReplicaSet(engine, [target("a")])
    replicas.add_replica(target("a"))  # the static replica, listed again: nothing to do
    replicas.drain_replica("nobody")  # unknown: nothing to do
    replicas.add_replica(target("b"))
    await replicas.settled()
    assert engine.calls == [("add", "http://10.0.0.1:8080")] and engine.names == {"a", "b"}
    engine.calls.clear()
    # b drains slowly (a request in flight); meanwhile b is ready again and c arrives
    engine.in_flight["b"] = asyncio.Event()
    replicas.drain_replica("b")
    replicas.add_replica(target("b", 9090))
    replicas.add_replica(target("c"))
    await wait_until(lambda: ("add", "http://10.0.0.1:8080") in engine.calls, what="c added")
    assert engine.calls == [("drain", "b"), ("add", "http://10.0.0.1:8080")]  # c is not held up by b
    engine.in_flight["b"].set()
    await replicas.settled()
    assert engine.calls[2:] == [("drained", "b"), ("add", "http://10.0.0.1:9090")]  # b again, after its drain
    # a pod at a new address: the old one drains first
    engine.calls.clear()
    replicas.add_replica(target("a", 7070))
    replicas.remove_replica("c")
    await replicas.settled()
    of_a = [c for c in engine.calls if c[1] in ("a", "http://10.0.0.1:7070")]
    assert of_a == [("drain", "a"), ("drained", "a"), ("add", "http://10.0.0.1:7070")]
    assert [c for c in engine.calls if c[1] == "c"] == [("drain", "c"), ("drained", "c")]
    assert sorted(replicas.active) == ["a", "b"] and replicas.failures == 0


async def test_engine_replica_set_counts_what_the_engine_refuses():
    engine = FakeEngine("a")
    replicas = EngineReplicaSet(engine)  # told nothing of the engine's static replica "a"
    replicas.add_replica(target("a"))
    await replicas.settled()
    assert replicas.failures == 1


# -- the follower against the fake API, with a recording data plane ---------------------------------


class RecordingReplicas:
    """A data plane that records what discovery told it, and when (the loop's clock)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.active: dict[str, ReplicaTarget] = {}

    def add_replica(self, target: ReplicaTarget) -> None:
        self.calls.append(("add", target.name))
        self.active[target.name] = target

    def drain_replica(self, name: str) -> None:
        self.calls.append(("drain", name))
        self.active.pop(name, None)

    async def remove_replica(self, name: str) -> None:  # async calls are awaited too
        self.calls.append(("remove", name))
        self.active.pop(name, None)


@pytest.fixture
async def api() -> AsyncIterator[FakeEndpointSliceAPI]:
    server = await FakeEndpointSliceAPI().start()
    yield server
    await server.stop()


@pytest.fixture
async def follow(api: FakeEndpointSliceAPI) -> AsyncIterator[Any]:
    """``await follow(replicas, **DiscoveryConfig fields)`` → a started follower, stopped after."""
    followers: list[EndpointSliceFollower] = []

    async def start(replicas: Any, token: str = TOKEN, **settings: Any) -> EndpointSliceFollower:
        token_file = Path(api_token_dir) / f"token-{len(followers)}"
        token_file.write_text(token)
        kube = KubeAPIConfig(url=api.url, namespace=NAMESPACE, token_path=token_file, ca_path=None)
        settings = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1, **settings}
        follower = EndpointSliceFollower(kube, DiscoveryConfig(service=SERVICE, **settings), replicas)
        followers.append(follower)
        await asyncio.wait_for(follower.start(), 30)
        return follower

    import tempfile

    with tempfile.TemporaryDirectory() as api_token_dir:
        yield start
        for follower in followers:
            await follower.stop()


def two_pods(a_ready: bool = True, b_ready: bool = True, **b_conditions: Any) -> dict[str, Any]:
    return endpoint_slice("digits-x1", SERVICE, [
        endpoint("10.8.0.5", "pod-a", "node-1", ready=a_ready),
        endpoint("10.8.1.6", "pod-b", "node-2", ready=b_ready, **b_conditions),
    ], port=8080)  # fmt: skip


async def test_list_then_watch_reports_add_not_ready_terminating_and_removed(api, follow):
    api.put(two_pods(b_ready=False))
    api.put(endpoint_slice("other-y1", "other", [endpoint("10.9.0.1", "pod-x", "node-1")], port=8080))
    replicas = RecordingReplicas()
    follower = await follow(replicas)
    # the list: only the ready pod of our Service
    assert replicas.calls == [("add", "pod-a")]
    assert replicas.active["pod-a"] == ReplicaTarget("pod-a", "http://10.8.0.5:8080", "node-1")
    (listing,) = [r for r in api.requests if "watch" not in r]
    assert listing["labelSelector"] == "kubernetes.io/service-name=digits"
    await wait_until(lambda: api.count(watch="1") == 1, what="the watch")
    watch = next(r for r in api.requests if r.get("watch") == "1")
    assert (watch["resourceVersion"], watch["allowWatchBookmarks"]) == (str(api.version), "true")

    async def next_call(expected: tuple[str, str]) -> None:
        await wait_until(lambda: replicas.calls[-1:] == [expected], what=f"{expected}")

    api.put(two_pods())  # b became ready
    await next_call(("add", "pod-b"))
    api.put(two_pods(b_ready=False))  # b failed its readiness probe
    await next_call(("drain", "pod-b"))
    api.put(two_pods())
    await next_call(("add", "pod-b"))
    api.put(two_pods(b_ready=False, serving=True, terminating=True))  # b is being deleted
    await next_call(("drain", "pod-b"))
    api.put(endpoint_slice("digits-x1", SERVICE, [endpoint("10.8.0.5", "pod-a", "node-1")], port=8080))
    await next_call(("remove", "pod-b"))
    api.delete("digits-x1")
    await next_call(("remove", "pod-a"))
    assert replicas.active == {}
    assert follower.counters.lists == 1 and follower.counters.errors == 0
    assert follower.resource_version == str(api.version)


async def test_a_closed_watch_resumes_from_the_last_version_without_listing_again(api, follow):
    api.put(two_pods())
    replicas = RecordingReplicas()
    follower = await follow(replicas)
    await wait_until(lambda: api.count(watch="1") == 1, what="the watch")
    api.put(two_pods(b_ready=False))
    await wait_until(lambda: replicas.calls[-1:] == [("drain", "pod-b")], what="the drain")
    seen = api.version
    api.close_watches()
    api.put(two_pods())  # while no watch is open: delivered by the next one
    await wait_until(lambda: replicas.calls[-1:] == [("add", "pod-b")], what="the change made between watches")
    resumed = [r for r in api.requests if r.get("watch") == "1"][1]
    assert resumed["resourceVersion"] == str(seen)
    assert follower.counters.lists == 1


@pytest.mark.parametrize("as_status", [False, True], ids=["error-event", "410-answer"])
async def test_410_gone_lists_again_and_removes_what_vanished_meanwhile(api, follow, as_status):
    api.gone_as_status = as_status
    api.put(two_pods())
    api.put(endpoint_slice("digits-x2", SERVICE, [endpoint("10.8.2.7", "pod-c", "node-3")], port=8080))
    replicas = RecordingReplicas()
    follower = await follow(replicas)
    assert sorted(replicas.active) == ["pod-a", "pod-b", "pod-c"]
    await wait_until(lambda: api.count(watch="1") == 1, what="the watch")
    # While the follower is not watching, pod-c's slice goes and pod-d arrives, and the server
    # forgets the history: the resumed watch is answered 410 Gone.
    api.close_watches()
    api.delete("digits-x2")
    api.put(endpoint_slice("digits-x3", SERVICE, [endpoint("10.8.3.8", "pod-d", "node-1")], port=8080))
    api.compact()
    await wait_until(lambda: follower.counters.relists_after_gone == 1, what="the re-list")
    await wait_until(lambda: sorted(replicas.active) == ["pod-a", "pod-b", "pod-d"], what="the new state")
    assert ("remove", "pod-c") in replicas.calls and ("add", "pod-d") in replicas.calls
    assert follower.counters.lists == 2
    assert ("add", "pod-a") not in replicas.calls[1:]  # unchanged pods are not added twice


async def test_api_errors_are_retried_after_a_backoff(api, follow):
    api.put(two_pods())
    api.fail_next(3, 500)  # the first list fails three times
    replicas = RecordingReplicas()
    follower = await follow(replicas)
    assert sorted(replicas.active) == ["pod-a", "pod-b"]
    assert follower.counters.errors == 3
    await wait_until(lambda: api.count(watch="1") == 1, what="the watch")
    api.fail_next(2, 503)
    api.close_watches()  # the next two watch attempts fail, the third works
    await wait_until(lambda: api.count(watch="1") == 4, what="the watch to be retried")
    api.put(two_pods(b_ready=False))
    await wait_until(lambda: replicas.calls[-1:] == [("drain", "pod-b")], what="the drain")
    assert follower.counters.errors == 5 and follower.counters.lists == 1


async def test_bookmarks_move_the_resource_version_on(api, follow):
    api.put(two_pods())
    follower = await follow(RecordingReplicas())
    await wait_until(lambda: api.count(watch="1") == 1, what="the watch")
    api.put(endpoint_slice("other-y1", "other", [endpoint("10.9.0.1", "pod-x", "node-1")], port=8080))
    api.bookmark()  # the watch never saw the other Service's change; the bookmark carries its version
    await wait_until(lambda: follower.resource_version == str(api.version), what="the bookmark")


async def test_a_list_is_read_page_by_page(api, follow, monkeypatch):
    monkeypatch.setattr(discovery_module, "LIST_PAGE_SIZE", 2)
    for i in range(5):
        api.put(endpoint_slice(f"digits-p{i}", SERVICE, [endpoint(f"10.8.0.{i + 1}", f"pod-{i}", "n")], port=8080))
    replicas = RecordingReplicas()
    await follow(replicas)
    assert sorted(replicas.active) == [f"pod-{i}" for i in range(5)]
    assert [r.get("continue", "") for r in api.requests if "watch" not in r] == ["", "2", "4"]


async def test_a_refused_service_account_is_a_clear_error_not_a_retry_loop(api, follow):
    with pytest.raises(DiscoveryError, match=r"refused \(401\).*get/list/watch on endpointslices"):
        await follow(RecordingReplicas(), token="wrong-token")
    assert api.count() == 1


# -- the real balancer and real replica processes behind the fake API ------------------------------


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory, digits_model) -> str:
    import joblib

    path = tmp_path_factory.mktemp("discovery-model") / "digits.joblib"
    joblib.dump(digits_model[0], path)
    return str(path)


@pytest.fixture
async def replica_processes(digits_file) -> AsyncIterator[Any]:
    """``await replica_processes("pod-a", slowdown)`` → a running ``python -m mltoolkit.serving``."""
    from tests.serving.process import start_server

    started: list[Any] = []

    async def start(name: str, slowdown: float = 1.0) -> Any:
        server = await asyncio.to_thread(
            start_server, "--model-path", digits_file, "--model-name", "digits", "--port", "0",
            "--host", "127.0.0.1", "--replica-id", name, "--slowdown", str(slowdown), "--no-batching",
        )  # fmt: skip
        started.append(server)
        return server

    yield start
    for server in started:
        await asyncio.to_thread(server.stop)


def slice_for(name: str, url: str, **conditions: Any) -> dict[str, Any]:
    """The slice of one local replica (a slice has one port; each local replica has its own)."""
    port = int(url.rsplit(":", 1)[1])
    item = endpoint("127.0.0.1", name, f"node-{name[-1]}", **conditions)
    return endpoint_slice(f"digits-{name}", SERVICE, [item], port=port)


class TimedEngine:
    """The data plane's membership calls, noting when each reached it and what was in flight."""

    def __init__(self, balancer: Any) -> None:
        self.balancer = balancer
        self.added_at: dict[str, float] = {}
        self.drained_at: dict[str, float] = {}  # when the replica stopped getting new requests
        self.in_flight_at_drain: dict[str, int] = {}

    def state(self, name: str) -> Any:
        return next((s for s in self.balancer.states if s.name == name), None)

    async def add_replica(self, target: ReplicaTarget) -> None:
        await self.balancer.add_replica(target)
        self.added_at[target.name] = asyncio.get_running_loop().time()

    async def drain_replica(self, name: str) -> None:
        state = self.state(name)
        self.in_flight_at_drain[name] = state.in_flight if state is not None else -1
        self.drained_at[name] = asyncio.get_running_loop().time()
        await self.balancer.drain_replica(name)  # no new request chooses it from before its first await


async def test_real_replicas_join_within_their_update_and_a_terminating_one_finishes_its_requests(
    api, follow, replica_processes, start_balancer
):
    a = await replica_processes("pod-a", slowdown=30.0)  # ~30 ms a request: requests are in flight
    b = await replica_processes("pod-b", slowdown=30.0)
    api.put(slice_for("pod-a", a.url))
    running = await start_balancer([ReplicaTarget("pod-a", a.url, "node-a")], health_interval_s=0.25)
    membership = TimedEngine(running.balancer)
    replicas = EngineReplicaSet(membership, running.balancer.config.replicas)
    follower = await follow(replicas)
    assert [s.name for s in running.balancer.states] == ["pod-a"]

    loop = asyncio.get_running_loop()
    answers: list[tuple[float, int, str]] = []  # (sent at, status, X-Replica)
    stop = asyncio.Event()
    rows = [[0.0] * 64 for _ in range(20)]

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            sent = loop.time()
            try:
                async with session.post(f"{running.url}/predict", json={"instances": rows}) as response:
                    await response.read()
                    answers.append((sent, response.status, response.headers.get("X-Replica", "")))
            except aiohttp.ClientError as exc:
                answers.append((sent, 0, type(exc).__name__))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        clients = [asyncio.create_task(client(session)) for _ in range(6)]
        try:
            await wait_until(lambda: len(answers) >= 20, timeout_s=60, what="traffic on pod-a")
            # pod-b becomes ready: its slice appears
            updated = loop.time()
            api.put(slice_for("pod-b", b.url))
            await wait_until(lambda: any(r == "pod-b" for _, _, r in answers), timeout_s=30, what="traffic on pod-b")
            first_b = min(sent for sent, _, r in answers if r == "pod-b")
            joined_s = membership.added_at["pod-b"] - updated
            print(f"\npod-b: added {joined_s * 1000:.1f} ms after its update; "
                  f"first request sent to it {(first_b - updated) * 1000:.1f} ms after")  # fmt: skip
            # pod-a is deleted: Kubernetes marks its endpoint terminating and sends it SIGTERM at
            # the same time; it stops accepting and finishes what it holds.
            await wait_until(lambda: running.state("pod-a").in_flight >= 2, what="requests in flight on pod-a")
            api.put(slice_for("pod-a", a.url, ready=False, serving=True, terminating=True))
            a.process.send_signal(signal.SIGTERM)
            await wait_until(lambda: "pod-a" in membership.drained_at, what="pod-a drained")
            await wait_until(lambda: a.process.poll() is not None, timeout_s=30, what="pod-a to exit")
            count = len(answers)
            await wait_until(lambda: len(answers) >= count + 20, timeout_s=60, what="traffic after the drain")
        finally:
            stop.set()
            await asyncio.gather(*clients)
        await replicas.settled()

    failed = [a for a in answers if a[1] != 200]
    assert failed == []
    assert a.process.returncode == 0
    drained = membership.drained_at["pod-a"]
    assert membership.in_flight_at_drain["pod-a"] >= 1  # it had requests in flight when drained ...
    late = [sent for sent, _, r in answers if r == "pod-a" and sent >= drained]
    assert late == []  # ... and received none sent after its update reached the balancer
    assert any(r == "pod-a" for _, _, r in answers) and any(r == "pod-b" for _, _, r in answers)
    assert [s.name for s in running.balancer.states] == ["pod-b"]
    assert running.balancer.states[0].node == "node-b"
    assert follower.counters.errors == 0


# -- the command line and the app ------------------------------------------------------------------


def test_discovery_options_build_the_configs(tmp_path: Path):
    import argparse

    from mltoolkit.balancer.discovery import OPTION_OF_FIELD, add_discovery_options, discovery_from_args

    parser = argparse.ArgumentParser()
    add_discovery_options(parser)
    for name in ("token", "ca.crt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "namespace").write_text("pods-namespace")
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    def parse(*argv: str) -> Any:
        return discovery_from_args(parser.parse_args(argv), environ=environ, service_account_dir=tmp_path)

    assert parse() is None  # no --discover-service: the static --replica list
    api, config = parse("--discover-service", "digits-replicas")
    assert (config.service, config.port_name, api.namespace) == ("digits-replicas", "http", "pods-namespace")
    api, config = parse("--discover-service", "digits-replicas", "--discover-namespace", "mltoolkit",
                        "--discover-port-name", "serving")  # fmt: skip
    assert (config.port_name, api.namespace, api.url) == ("serving", "mltoolkit", "https://10.96.0.1:443")
    with pytest.raises(SpecError) as error:
        parse("--discover-service", "Not_A_Service")
    assert OPTION_OF_FIELD[error.value.field] == "--discover-service"
    with pytest.raises(SpecError) as error:
        parse("--discover-service", "digits", "--discover-namespace", "Bad_NS")
    assert OPTION_OF_FIELD[error.value.field] == "--discover-namespace"


def test_the_command_line_needs_replicas_or_discovery_and_starts_with_none_under_discovery(tmp_path: Path):
    from mltoolkit.balancer.cli import command_from_args

    for name, text in (("token", TOKEN), ("ca.crt", "x"), ("namespace", NAMESPACE)):
        (tmp_path / name).write_text(text)
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(discovery_module, "SERVICE_ACCOUNT_DIR", tmp_path)
        config, found = command_from_args(["--port", "0", "--discover-service", SERVICE], environ=environ)
    assert config.replicas == () and config.discovered
    api_config, settings = found
    assert (api_config.url, api_config.namespace, settings.service) == ("https://127.0.0.1:6443", NAMESPACE, SERVICE)
    config, found = command_from_args(["--port", "0", "--replica", "a=http://127.0.0.1:9001"], environ={})
    assert found is None and not config.discovered


@pytest.mark.parametrize(
    "argv, environ, message",
    [
        (["--port", "0"], {}, "the replicas are missing: give --replica NAME=URL[@NODE]"),
        (["--port", "0", "--discover-service", SERVICE], {}, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"),
        (["--port", "0", "--discover-service", "Bad_Name"], {}, "argument --discover-service: 'Bad_Name'"),
    ],
)
def test_the_command_line_names_what_is_missing_or_wrong(argv, environ, message, capsys):
    from mltoolkit.balancer.cli import command_from_args

    with pytest.raises(SystemExit) as info:
        command_from_args(argv, environ=environ)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_config_without_replicas_is_refused_unless_discovered():
    from mltoolkit.balancer import BalancerConfig

    with pytest.raises(SpecError) as error:
        BalancerConfig(replicas=())
    assert error.value.field == "BalancerConfig.replicas"
    assert BalancerConfig(replicas=(), discovered=True).replicas == ()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as the in-cluster CA and API server's."""
    import subprocess

    cert, key = tmp_path / "api.crt", tmp_path / "api.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize(
    "data_plane, no_replica",
    [pytest.param("haproxy", "no replica is available", marks=needs_haproxy), ("python", "no replica yet")],
)
async def test_the_balancer_process_follows_the_service_and_routes_to_a_replica_it_found(
    tls_files, tmp_path, replica_processes, monkeypatch, data_plane, no_replica
):
    """``python -m mltoolkit.balancer --discover-service``, as in a pod: the in-cluster API over
    TLS with the service-account token and CA; no replica at first (503), then a real replica
    process added by an EndpointSlice event gets the traffic through the balancer process."""
    import os
    import ssl
    import subprocess
    import sys

    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    api = await FakeEndpointSliceAPI(ssl_context=context).start()
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_bytes(cert.read_bytes())
    (account / "namespace").write_text(NAMESPACE)
    port = api.url.rsplit(":", 1)[1]
    # the balancer reads its service account where every pod has it; here, from a test directory
    bootstrap = (
        "import sys, pathlib; from mltoolkit.balancer import discovery, cli; "
        f"discovery.SERVICE_ACCOUNT_DIR = pathlib.Path({str(account)!r}); "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    stderr = open(tmp_path / "balancer.stderr", "wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", bootstrap, "--port", "0", "--health-interval", "0.1",
        "--discover-service", SERVICE, "--data-plane", data_plane,
        stdout=asyncio.subprocess.PIPE, stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
             "KUBERNETES_SERVICE_PORT": port},
    )  # fmt: skip
    stderr.close()
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        assert "listening on http://127.0.0.1:" in line, (line, (tmp_path / "balancer.stderr").read_text())
        assert f"Service {SERVICE} in {NAMESPACE}" in line
        url = line.split("listening on ")[1].split()[0]
        assert api.count(labelSelector=f"kubernetes.io/service-name={SERVICE}") >= 1  # listed before listening
        rows = {"instances": [[0.0] * 64]}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.post(f"{url}/predict", json=rows) as response:
                assert response.status == 503
                assert no_replica in (await response.json())["error"]
            replica = await replica_processes("pod-a")
            api.put(slice_for("pod-a", replica.url))  # the pod became ready
            served: list[str] = []

            async def routed_to_pod_a() -> bool:
                async with session.post(f"{url}/predict", json=rows) as response:
                    if response.status == 200:
                        served.append(response.headers.get("X-Replica", ""))
                return "pod-a" in served

            deadline = asyncio.get_running_loop().time() + 30
            while not await routed_to_pod_a():
                assert asyncio.get_running_loop().time() < deadline, "pod-a never got traffic"
                await asyncio.sleep(0.05)
            async with session.get(f"{url}/-/replicas") as response:
                listed = [(r["name"], r["node"], r["url"]) for r in (await response.json())["replicas"]]
            assert listed == [("pod-a", "node-a", replica.url)]
            # the pod terminates: its endpoint is no longer ready, so it leaves the balancer
            api.put(slice_for("pod-a", replica.url, ready=False, serving=True, terminating=True))
            for _ in range(600):
                async with session.get(f"{url}/-/replicas") as response:
                    if not (await response.json())["replicas"]:
                        break
                await asyncio.sleep(0.05)
            async with session.post(f"{url}/predict", json=rows) as response:
                assert response.status == 503
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await api.stop()


async def test_a_data_plane_that_fails_a_decision_gets_it_again_from_a_fresh_list(api, follow):
    class FailingOnce(RecordingReplicas):
        failed = False

        def add_replica(self, target: ReplicaTarget) -> None:
            if target.name == "pod-b" and not self.failed:
                self.failed = True
                raise RuntimeError("pool could not open")
            super().add_replica(target)

    api.put(two_pods(b_ready=False))
    replicas = FailingOnce()
    follower = await follow(replicas)
    await wait_until(lambda: api.count(watch="1") == 1, what="the watch")
    api.put(two_pods())
    await wait_until(lambda: "pod-b" in replicas.active, what="pod-b added after the failure")
    assert replicas.failed and follower.counters.errors == 1 and follower.counters.lists == 2
