"""The haproxy data plane's controller: the pure parts on hand-built inputs; the runtime API and
the control loop against real HAProxy (run by ``HAProxyPlane``) and fake replicas."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import aiohttp
import pytest

from mltoolkit.balancer import BalancerConfig, ReplicaTarget
from mltoolkit.balancer import haproxy_controller as hc
from mltoolkit.balancer.haproxy_config import FULL_WEIGHT
from mltoolkit.balancer.haproxy_controller import (
    Controller,
    HAProxyError,
    ServerStat,
    WeightRule,
    broke_off,
    parse_show_stat,
    weight_changes,
)
from mltoolkit.balancer.haproxy_plane import HAProxyPlane

from .fakes import needs_haproxy, until_up, wait_until

def stat(name: str, stot: int, scur: int, weight: int = 100, status: str = "UP") -> ServerStat:
    return ServerStat(name, status, weight, scur, 0, stot, 0, 0)


# -- pure -----------------------------------------------------------------------------------------


SHOW_STAT = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
    "status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
    "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,"
    "hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,"
    "comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,\n"
    "balancer,FRONTEND,,,1,2,8192,10,,,,,,,,,,OPEN,,,,,,,,,1,2,0,,,,0,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n"
    "replicas,fast,0,0,1,3,,40,,,,,,0,0,0,0,UP,100,1,0,0,0,5,0,,1,3,1,,40,,2,,,,L7OK,200,1,,40,,,,,"
    ",,,,,,,,,,0,,,0,0,2,3,\n"
    "replicas,slow,2,4,2,2,,12,,,,,,0,0,0,0,DOWN,33,1,0,0,0,5,0,,1,3,2,,12,,2,,,,L7OK,200,1,,12,,,,,"
    ",,,,,,,,,,0,,,0,0,60,61,\n"
    "replicas,BACKEND,0,0,3,3,,52,,,,,,,,,,UP,133,2,0,,0,5,0,,1,3,0,,52,,1,,,,,,,,,,,,,,,,,,,,,,,,,,\n"
    "\n"
)


def test_show_stat_gives_the_backends_servers_only():
    servers = parse_show_stat(SHOW_STAT)
    assert [s.name for s in servers] == ["fast", "slow"]
    fast, slow = servers
    assert (fast.scur, fast.qcur, fast.stot, fast.weight, fast.rtime_ms, fast.ttime_ms) == (1, 0, 40, 100, 2, 3)
    assert (slow.scur, slow.qcur, slow.stot, slow.weight, slow.rtime_ms, slow.ttime_ms) == (2, 2, 12, 33, 60, 61)
    assert fast.up and not slow.up


def test_show_stat_refuses_an_error_answer():
    with pytest.raises(HAProxyError, match="Unknown command"):
        parse_show_stat("Unknown command. Please enter one of the following commands only :\n")


def feed(rule: WeightRule, seconds_per_request: dict[str, float], slots: int = 2, polls: int = 50,
         interval_s: float = 0.2) -> list[ServerStat]:
    """Poll ``rule`` with servers each kept at ``slots`` in flight, completing accordingly."""
    totals = {name: 0.0 for name in seconds_per_request}
    stats: list[ServerStat] = []
    for i in range(polls):
        for name, seconds in seconds_per_request.items():
            totals[name] += slots / seconds * interval_s
        stats = [stat(name, int(total), slots) for name, total in totals.items()]
        rule.update(stats, interval_s if i else 0.0)
    return stats


def test_a_replica_n_times_slower_gets_about_one_nth_of_the_weight():
    rule = WeightRule(smoothing_s=1.0, min_requests=5)
    stats = feed(rule, {"fast": 0.1, "medium": 0.2, "slow": 0.3})
    weights = rule.weights(stats)
    assert weights["fast"] == FULL_WEIGHT
    assert weights["medium"] == pytest.approx(FULL_WEIGHT / 2, abs=4)
    assert weights["slow"] == pytest.approx(FULL_WEIGHT / 3, abs=4)


def test_near_equal_replicas_keep_equal_weights():
    # 15 % apart is within the python ewma's tie tolerance (25 %): noise between equal replicas
    # must not split their traffic unevenly; 35 % apart is not; below 10 ms times are all equal
    rule = WeightRule(smoothing_s=1.0, min_requests=5)
    weights = rule.weights(feed(rule, {"a": 0.100, "b": 0.115, "c": 0.135}))
    assert (weights["a"], weights["b"]) == (FULL_WEIGHT, FULL_WEIGHT)
    assert weights["c"] == pytest.approx(FULL_WEIGHT / 1.35, abs=3)
    rule = WeightRule(smoothing_s=1.0, min_requests=5)
    assert set(rule.weights(feed(rule, {"a": 0.002, "b": 0.008})).values()) == {FULL_WEIGHT}


def test_weights_need_enough_requests_and_skip_servers_that_are_down():
    rule = WeightRule(smoothing_s=1.0, min_requests=1000, min_busy_s=1000)
    stats = feed(rule, {"fast": 0.1, "slow": 0.3})
    assert rule.weights(stats) == {"fast": FULL_WEIGHT, "slow": FULL_WEIGHT}
    down = [stats[0], stat("slow", stats[1].stot, 0, status="DOWN")]
    assert rule.weights(down) == {"fast": FULL_WEIGHT}


def test_a_very_slow_replica_keeps_weight_one():
    rule = WeightRule(smoothing_s=1.0)
    stats = feed(rule, {"fast": 0.01, "stuck": 50.0}, polls=400)
    assert rule.weights(stats)["stuck"] == 1


def test_show_stat_reads_the_answers_a_server_broke_off():
    (a,) = parse_show_stat("# pxname,svname,status,eresp,srv_abrt,econ\nreplicas,a,UP,5,3,1\n")
    assert (a.eresp, a.srv_abrt, a.econ) == (5, 3, 1)


def test_servers_up_that_broke_off_an_answer_since_the_last_poll_are_named():
    def broken(name: str, srv_abrt: int, status: str = "UP") -> ServerStat:
        return replace(stat(name, 10, 0, status=status), srv_abrt=srv_abrt)

    stats = [broken("a", 2), broken("b", 1), broken("c", 0), broken("down", 5, "DOWN"), broken("new", 1)]
    assert broke_off(stats, {"a": 1, "b": 1, "c": 0, "down": 4}) == ["a", "new"]


class ScriptedAPI:
    """``show stat`` answers from a script; the commands sent are recorded."""

    def __init__(self, polls: list[list[ServerStat]]) -> None:
        self.polls = polls
        self.sent: list[str] = []

    def show_stat(self) -> list[ServerStat]:
        return self.polls.pop(0)

    def mark_down(self, name: str) -> None:
        self.sent.append(f"down {name}")

    def set_weight(self, name: str, weight: int) -> None:
        self.sent.append(f"weight {name} {weight}")


def test_the_controller_marks_down_a_server_once_per_broken_answer_whatever_the_policy():
    def poll(srv_abrt: int, status: str = "UP") -> list[ServerStat]:
        return [replace(stat("a", 10, 0, status=status), srv_abrt=srv_abrt), stat("b", 10, 0)]

    api = ScriptedAPI([poll(0), poll(1), poll(1), poll(2, "DOWN"), poll(2), poll(3)])
    controller = Controller(api, None)  # type: ignore[arg-type]
    for _ in range(6):
        assert controller.step() == {}  # no weight rule: no weights
    # once at the first break; the second came while a was down already (it is out of rotation)
    assert api.sent == ["down a", "down a"] and controller.marked_down == 2


def test_only_weights_that_moved_are_sent():
    stats = [stat("a", 0, 0, weight=100), stat("b", 0, 0, weight=40)]
    assert weight_changes(stats, {"a": 95, "b": 20, "gone": 5}) == {"b": 20}


# -- real HAProxy ------------------------------------------------------------------------------------


def test_a_missing_haproxy_names_the_install_command(monkeypatch):
    monkeypatch.setattr(hc.shutil, "which", lambda name: None)
    config = BalancerConfig(replicas=(ReplicaTarget("a", "http://127.0.0.1:9000"),))
    with pytest.raises(HAProxyError, match="apt-get install haproxy"):
        HAProxyPlane(config)


async def get_replica(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(url + "/predict", json={"instances": [[1, 2]]}) as response:
        assert response.status == 200
        return response.headers["X-Replica"]


@needs_haproxy
@pytest.mark.anyio
async def test_runtime_api_reads_and_sets_weights_and_membership(replicas, plane):
    a, b, c = await replicas("a"), await replicas("b"), await replicas("c")
    running = await plane([a, b], policy="least_request")  # no controller: weights set by hand
    api = running.api
    await until_up(running, 2)
    stats = {s.name: s for s in await asyncio.to_thread(api.show_stat)}
    assert set(stats) == {"a", "b"} and stats["a"].weight == FULL_WEIGHT
    await asyncio.to_thread(api.set_weight, "b", 7)
    stats = {s.name: s for s in await asyncio.to_thread(api.show_stat)}
    assert stats["b"].weight == 7
    with pytest.raises(HAProxyError, match="nothere"):
        await asyncio.to_thread(api.set_weight, "nothere", 7)

    async with aiohttp.ClientSession() as session:
        seen = {await get_replica(session, running.url) for _ in range(6)}
        assert seen <= {"a", "b"} and "a" in seen  # X-Replica passed through
        await asyncio.to_thread(api.add_server, ReplicaTarget("c", c.url), FULL_WEIGHT, "check inter 100ms")
        await until_up(running, 3)
        await asyncio.to_thread(api.set_weight, "a", 0)
        await asyncio.to_thread(api.set_weight, "b", 0)
        assert {await get_replica(session, running.url) for _ in range(4)} == {"c"}
        await asyncio.to_thread(api.set_weight, "a", 100)
        await asyncio.to_thread(api.remove_server, "c")
        assert [s.name for s in await asyncio.to_thread(api.show_stat)] == ["a", "b"]
        assert {await get_replica(session, running.url) for _ in range(4)} == {"a"}
    await running.close(grace_s=1.0)
    assert not os.path.exists(running.workdir)  # configuration, sockets and error files removed
    assert not running.running


@needs_haproxy
@pytest.mark.anyio
@pytest.mark.parametrize("sickness", ["hangs", "answers 503"])
async def test_health_checks_take_a_failing_replica_out_and_back(replicas, plane, sickness):
    a, b = await replicas("a"), await replicas("b")
    running = await plane([a, b], policy="round_robin", health_interval_s=0.05, health_timeout_s=0.2)
    await until_up(running, 2)
    if sickness == "hangs":
        b.health_hangs = True  # every check of b times out from now on
    else:
        b.health_status = 503
    await until_up(running, 1)
    b_before = b.predicts
    async with aiohttp.ClientSession() as session:
        assert {await get_replica(session, running.url) for _ in range(6)} == {"a"}
        assert b.predicts == b_before
        b.health_hangs, b.health_status = False, 200
        await until_up(running, 2)
        assert {await get_replica(session, running.url) for _ in range(4)} == {"a", "b"}


@needs_haproxy
@pytest.mark.anyio
@pytest.mark.parametrize("policy", ["least_request", "late_binding"])
async def test_a_replica_killed_under_load_fails_no_request(replicas, plane, policy):
    # late_binding: one request per replica, the live one is full, and the dead one, holding
    # nothing, would draw every retry were it not marked down at the first refused connection.
    a, b = await replicas("a", delay_s=0.005), await replicas("b", delay_s=0.005)
    running = await plane([a, b], policy=policy)
    await until_up(running, 2)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            async with session.post(running.url + "/predict", json={"instances": [[1]]}) as response:
                statuses.append(response.status)
                await response.read()

    async with aiohttp.ClientSession() as session:
        clients = [asyncio.ensure_future(client(session)) for _ in range(8)]
        try:
            await wait_until(lambda: b.predicts >= 50, timeout_s=30, what="traffic on b")
            await b.stop()  # in-flight requests dropped, new connections refused
            killed_at = len(statuses)
            await wait_until(lambda: len(statuses) >= killed_at + 300, timeout_s=60,
                             what="300 more answers")  # fmt: skip
        finally:
            stop.set()
            await asyncio.gather(*clients)
    assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}


@needs_haproxy
@pytest.mark.anyio
async def test_the_controller_shifts_traffic_away_from_a_slow_replica(replicas, plane):
    fast, slow = await replicas("fast", delay_s=0.01), await replicas("slow", delay_s=0.08)
    running = await plane([fast, slow], policy="least_request")  # the test runs its controller
    await until_up(running, 2)
    controller = Controller(running.api, WeightRule(smoothing_s=0.5, min_requests=5), interval_s=0.1)
    stop = asyncio.Event()

    async def client(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            await get_replica(session, running.url)

    def slow_weight() -> bool:
        stats = {s.name: s for s in running.api.show_stat()}
        return stats["fast"].weight == FULL_WEIGHT and stats["slow"].weight <= FULL_WEIGHT // 3

    async def share_of_slow(requests_on_fast: int = 200) -> float:
        before = (fast.predicts, slow.predicts)
        await wait_until(lambda: fast.predicts - before[0] >= requests_on_fast, timeout_s=60,
                         what=f"{requests_on_fast} more requests on the fast replica")  # fmt: skip
        on_fast, on_slow = fast.predicts - before[0], slow.predicts - before[1]
        return on_slow / (on_fast + on_slow)

    async with aiohttp.ClientSession() as session:
        clients = [asyncio.ensure_future(client(session)) for _ in range(8)]
        try:
            plain = await share_of_slow()  # leastconn, equal weights
            with controller:
                await wait_until(lambda: asyncio.to_thread(slow_weight), timeout_s=30,
                                 what="the slow replica's weight lowered")  # fmt: skip
                weighted = await share_of_slow()
        finally:
            stop.set()
            await asyncio.gather(*clients)
    assert controller.weight_sets >= 1 and controller.errors == 0, controller.last_error
    # Plain leastconn keeps about as many requests on the 8x slower replica as on the fast
    # one (~1/9 of the answers); at ~1/8 of the weight it holds about one at a time.
    assert weighted < plain / 3, (plain, weighted)
