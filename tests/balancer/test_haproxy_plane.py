"""The haproxy data plane: its configuration (pure), its log and reports (pure), and HAProxy itself
forwarding real requests to fake replicas, with this package as the controller."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import psutil
import pytest

from mltoolkit.balancer import BalancerConfig, ReplicaTarget
from mltoolkit.balancer import haproxy_config as hc
from mltoolkit.balancer.discovery import EngineReplicaSet
from mltoolkit.balancer.haproxy_controller import ServerStat, show_stat_rows
from mltoolkit.balancer.haproxy_plane import (
    RUNTIME_SOCKET,
    STALE_WORKDIR_AGE_S,
    WORKDIR_PREFIX,
    HAProxyEngine,
    LatencyLog,
    remove_stale_workdirs,
    replicas_document,
    traffic_rows,
)

from .fakes import (
    FakeReplica,
    HalfAnswerServer,
    SLOW_AND_IDLE_CLIENTS,
    OneAnswerPerConnection,
    needs_haproxy,
    parse_responses,
    raw_request,
    until_up,
    wait_until,
)
from .test_cli import REPO

A = ReplicaTarget("a", "http://127.0.0.1:9001", node="node-0")
B = ReplicaTarget("b", "http://127.0.0.1:9002", node="node-1", weight=3.0)
PATHS = hc.Paths("/tmp/x/admin.sock", 40001, {503: "/tmp/x/503.http"})


def config(**values: Any) -> BalancerConfig:
    values.setdefault("replicas", (A, B))
    return BalancerConfig(data_plane="haproxy", **values)


# -- configuration (pure) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, balance",
    [("round_robin", "roundrobin"), ("random", "random(1)"), ("power_of_two", "random(2)"),
     ("least_request", "leastconn"), ("ewma", "leastconn"), ("late_binding", "leastconn")],
)  # fmt: skip
def test_each_policy_maps_to_an_haproxy_algorithm(policy, balance):
    text = hc.render(config(policy=policy), PATHS, (3,))
    assert f"    balance {balance}\n" in text
    # late binding: one request per replica at a time, the others wait in HAProxy's queue
    assert (" maxconn 1 " in text) == (policy == "late_binding")


def test_the_configuration_carries_the_balancer_settings():
    text = hc.render(
        config(health_interval_s=0.3, unhealthy_after=3, retries=2, request_timeout_s=12.5,
               max_request_bytes=4096, client_header_timeout_s=4, client_idle_timeout_s=7,
               max_client_connections=100, latency_sample=8),
        PATHS, (3, 4),
    )  # fmt: skip
    assert "    bind fd@3\n    bind fd@4\n" in text
    # weights: the heaviest replica (3.0) at 256 (HAProxy's most), the other in proportion
    assert "    server a 127.0.0.1:9001 weight 85 check inter 300ms fall 3 rise 1" in text
    assert "    server b 127.0.0.1:9002 weight 256 check inter 300ms fall 3 rise 1" in text
    for line in ["retries 2", "timeout server 12500ms", "timeout queue 12500ms", "timeout http-request 4000ms",
                 "timeout http-keep-alive 7000ms", "maxconn 100", "option httpchk GET /v2/health/ready",
                 "http-request deny deny_status 413 if { req.hdr_val(content-length) gt 4096 }",
                 "errorfile 503 /tmp/x/503.http", "stats socket /tmp/x/admin.sock mode 600 level admin",
                 "log ring@latency len 256 format raw sample 1:8 local0",
                 "use_backend admin if { path_beg /-/ }", "server controller 127.0.0.1:40001",
                 "format raw", "size 1048576", "option http-buffer-request", "option http-ignore-probes"]:  # fmt: skip
        assert f"    {line}\n" in text, line
    assert "\nring latency\n" in text  # the log's ring, which the controller streams

def test_a_replica_the_haproxy_data_plane_cannot_reach_is_refused():
    for url in ("https://127.0.0.1:9001", "http://127.0.0.1:9001/v1"):
        with pytest.raises(Exception, match="an http://HOST:PORT URL without a path"):
            hc.render(config(replicas=(ReplicaTarget("a", url),)), PATHS, (3,))


def test_hedging_needs_the_python_data_plane():
    with pytest.raises(Exception, match="BalancerConfig.hedge.*hedging needs data_plane=.python."):
        config(hedge=True)


def test_an_error_file_is_a_whole_json_response():
    for status in hc.ERRORS:
        [(code, headers, body)] = parse_responses(hc.error_response(status))
        assert code == status
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == {"error": hc.ERRORS[status]}


# -- the log and the reports (pure) --------------------------------------------------------------


def test_the_latency_log_keeps_the_replicas_timed_answers_only():
    log = LatencyLog()
    for line in [b"replicas a 200 0\n", b"replicas a 200 3\n", b"replicas b 503 12\n",
                 b"replicas a -1 -1\n",  # no answer: not timed
                 b"admin controller 200 0\n", b"balancer <NOSRV> 400 -1\n", b"garbage"]:  # fmt: skip
        log.observe_line(line)
    assert log.lines == 3
    a, b = log.traffic["a"], log.traffic["b"]
    assert a.count == 2 and a.sum_s == pytest.approx(0.0005 + 0.0035)  # n ms stands for n + 0.5 ms
    assert a.buckets[0] == 1 and a.buckets[3] == 1  # <= 0.5 ms; (2, 5] ms
    assert b.by_status["5xx"] == 1


def test_the_latency_log_takes_whole_lines_from_the_stream_and_keeps_the_rest():
    log = LatencyLog()
    rest = log.observe_lines(b"replicas a 200 1\nreplicas a 200 1\nreplicas b 200 7\nrepl")
    assert rest == b"repl"  # a line still arriving waits for the next read
    assert log.observe_lines(rest + b"icas b 503 7\n\n") == b""
    assert log.observe_lines(b"replicas a 2") == b"replicas a 2"
    assert log.lines == 4
    a, b = log.traffic["a"], log.traffic["b"]
    assert (a.count, a.buckets[2]) == (2, 2)  # two equal lines, each 1.5 ms: (1, 2] ms
    assert a.sum_s == pytest.approx(2 * 0.0015)
    assert (b.count, b.by_status["2xx"], b.by_status["5xx"]) == (2, 1, 1)


def stat(name: str, **values: Any) -> ServerStat:
    fields = dict(status="UP", weight=100, scur=0, qcur=0, stot=0, rtime_ms=0, ttime_ms=0)
    fields.update(values)
    return ServerStat(name=name, **fields)


def test_traffic_counts_come_from_haproxy_and_the_histogram_from_the_sample():
    log = LatencyLog()
    for _ in range(3):
        log.observe_line(b"replicas a 200 1\n")
    stats = [stat("a", stot=14, hrsp=(10, 0, 2, 1), eresp=1), stat("b")]
    a, b = traffic_rows(stats, log, {"a": "node-0"}, sample=4)
    assert (a.name, a.node, a.count, a.errors) == ("a", "node-0", 14, 2)
    assert a.by_status == {"2xx": 10, "3xx": 0, "4xx": 2, "5xx": 1, "none": 1}
    assert sum(a.buckets) == 12 and a.sum_s == pytest.approx(4 * 3 * 0.0015)  # 3 logged, 1 in 4
    assert (b.count, sum(b.buckets)) == (0, 0)


def test_the_replicas_document_has_the_python_data_planes_keys():
    stats = [stat("a", scur=2, stot=9, econ=1, eresp=2, rtime_ms=7, check_status="L7OK"),
             stat("b", status="MAINT")]  # fmt: skip
    doc = replicas_document(config(), stats, {"a": A, "b": B}, set(), {"open": 1})
    a, b = doc["replicas"]
    assert (doc["policy"], doc["data_plane"], doc["clients"]) == ("ewma", "haproxy", {"open": 1})
    assert (a["node"], a["in_flight"], a["served"], a["failed"], a["latency_ewma_s"]) == ("node-0", 2, 9, 3, 0.007)
    assert (a["healthy"], a["draining"], b["healthy"], b["draining"]) == (True, False, False, True)


# -- HAProxy forwarding, this package controlling --------------------------------------------------


def backend_row(running: Any, server: str) -> dict[str, str]:
    """``server``'s row of ``show stat`` (its counters as HAProxy prints them)."""
    rows = show_stat_rows(running.api.command("show stat"))
    return next(r for r in rows if r["pxname"] == hc.BACKEND and r["svname"] == server)


async def two_statuses(client: aiohttp.ClientSession, url: str) -> list[int]:
    """The sorted statuses of two ``POST /predict`` (one per replica under round robin); an
    error answer must be our JSON."""
    statuses = []
    for _ in range(2):
        async with client.post(url + "/predict", json={"instances": [[1]]}) as response:
            statuses.append(response.status)
            if response.status >= 400:
                assert response.content_type == "application/json" and "error" in await response.json()
    return sorted(statuses)


@needs_haproxy
@pytest.mark.anyio
async def test_requests_bodies_and_headers_cross_unchanged(replicas, plane, client):
    a = await replicas("a")
    running = await plane([a], policy="round_robin")
    body = bytes(range(256)) * 4000  # ~1 MB of every byte value
    async with client.put(running.url + "/echo/x?y=1", data=body, headers={"X-Mine": "1"}) as response:
        assert response.status == 201
        assert response.headers["X-Replica"] == "a" and response.headers["X-Custom"] == "kept"
        assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
        echoed = await response.json()
    assert base64.b64decode(echoed["body_b64"]) == body
    assert (echoed["method"], echoed["path"], echoed["query"]) == ("PUT", "/echo/x", "y=1")
    assert ["x-mine", "1"] in [[k.lower(), v] for k, v in echoed["headers"]]  # HAProxy lowercases names
    # a chunked request body arrives whole
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"ab", b"cd", b"ef"):
            yield part

    async with client.post(running.url + "/echo/c", data=chunks()) as response:
        assert base64.b64decode((await response.json())["body_b64"]) == b"abcdef"


@needs_haproxy
@pytest.mark.anyio
async def test_the_connection_to_a_replica_is_kept_and_reused_across_clients(replicas, plane):
    a = await replicas("a")
    running = await plane([a], policy="least_request")
    for i in range(20):  # one after the other, each from a client connection of its own
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            async with session.post(running.url + "/predict", json={"instances": [[i, 1]]}) as response:
                assert response.status == 200
                assert (await response.json())["predictions"] == [i + 1]
    assert a.predicts == 20
    assert len(a.peers) == 1  # the replica saw one connection from HAProxy for all 20


@needs_haproxy
@pytest.mark.anyio
async def test_bad_requests_get_json_4xx_and_the_balancer_stays_up(replicas, plane, client):
    a = await replicas("a")
    running = await plane([a], max_request_bytes=2048)
    # Not HTTP: a 400, HAProxy's own HTML page (2.6 ignores errorfile for errors found while
    # parsing: https://github.com/haproxy/haproxy/issues/3032); every later error is our JSON
    [(status, _, _)] = parse_responses(await raw_request(running.url, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400
    async with client.post(running.url + "/predict", data=b"x" * 4096) as response:
        assert response.status == 413
        assert "--max-request-bytes" in (await response.json())["error"]
    assert a.predicts == 0  # refused before it reached a replica
    async with client.delete(running.url + "/-/health") as response:
        assert response.status == 405
    async with client.get(running.url + "/-/nothing") as response:
        assert response.status == 404 and "admin routes" in (await response.json())["error"]
    async with client.post(running.url + "/predict", json={"instances": [[1, 2]]}) as response:
        assert response.status == 200 and (await response.json())["predictions"] == [3]


@needs_haproxy
@pytest.mark.anyio
async def test_pipelined_requests_are_answered_in_order(replicas, plane):
    a = await replicas("a")
    running = await plane([a])
    one = b"POST /echo/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
    data = b"".join(one % i for i in range(3)) + b"GET /echo/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answers = parse_responses(await raw_request(running.url, data))
    assert [json.loads(body)["path"] for _, _, body in answers] == ["/echo/0", "/echo/1", "/echo/2", "/echo/last"]


@needs_haproxy
@pytest.mark.anyio
async def test_a_replica_killed_under_load_costs_no_request(replicas, plane, client):
    a = await replicas("a")
    b = await replicas("b", delay_s=0.002)
    running = await plane([a, b], policy="round_robin")

    async def one(i: int) -> int:
        async with client.post(running.url + "/predict", json={"instances": [[i]]}) as response:
            await response.read()
            return response.status

    load = [asyncio.create_task(one(i)) for i in range(300)]
    await wait_until(lambda: b.predicts > 10, what="requests on b")
    await b.stop()  # connections refused from now on: retried on a
    statuses = await asyncio.gather(*load)
    assert statuses == [200] * 300
    async with client.get(running.url + "/-/replicas") as response:
        replicas_doc = {r["name"]: r for r in (await response.json())["replicas"]}
    assert replicas_doc["b"]["served"] >= 10


@needs_haproxy
@pytest.mark.anyio
# a 6 KB body still fits HAProxy's 8 KB buffer (hc.BUFFER_BYTES), so it is kept for a replay
@pytest.mark.parametrize("rows", [[[1]], [[1] * 2000]], ids=["1 row", "6 KB of JSON"])
async def test_a_kept_alive_connection_the_replica_dropped_is_retried(plane, client, rows):
    server = await OneAnswerPerConnection().start()
    try:
        running = await plane([server], retries=1)
        for _ in range(6):  # each reuse of a kept-alive connection finds it closed by the replica
            async with client.post(running.url + "/predict", json={"instances": rows}) as response:
                assert response.status == 200 and (await response.json()) == {"predictions": [3]}
        assert server.dropped >= 1  # HAProxy did reuse connections, and retried on a fresh one
    finally:
        await server.stop()


@needs_haproxy
@pytest.mark.anyio
async def test_a_replica_that_broke_off_an_answer_is_out_until_its_next_check_passes(replicas, plane, client):
    half = await HalfAnswerServer().start()  # answers health checks, breaks off every answer
    try:
        good = await replicas("good")
        running = await plane([half, good], policy="round_robin")
        await until_up(running, 2)
        for _ in range(2):  # round robin: one of two reaches half
            with contextlib.suppress(aiohttp.ClientPayloadError):  # HAProxy had passed its head on
                async with client.post(running.url + "/predict", json={"instances": [[1]]}) as response:
                    await response.read()
        assert half.requests == 1
        controller = running.controller
        assert controller is not None
        await wait_until(lambda: controller.marked_down == 1, what="half marked down")
        assert backend_row(running, "half")["chkdown"] == "1"  # HAProxy took it down (its checks pass)
        await until_up(running, 2)  # half back after a passing check
        async with client.post(running.url + "/predict", json={"instances": [[1]]}) as response:
            assert response.status == 200  # the balancer is up
    finally:
        await half.stop()


@needs_haproxy
@pytest.mark.anyio
async def test_a_5xx_answer_is_passed_back_not_retried_and_keeps_the_replica_in(replicas, plane, client):
    a, b = await replicas("a"), await replicas("b")
    running = await plane([a, b], policy="round_robin")
    await until_up(running, 2)
    answers = []
    for _ in range(2):  # round robin: one of them reaches each replica
        async with client.get(running.url + "/status/500") as response:
            answers.append((response.status, (await response.json())["replica"]))
    assert sorted(answers) == [(500, "a"), (500, "b")]
    assert (a.received, b.received) == (["/status/500"], ["/status/500"])  # once each: no retry
    controller = running.controller
    assert controller is not None
    polls = controller.polls
    await wait_until(lambda: controller.polls >= polls + 2, what="two more polls")
    # a 500 is the replica's answer (a model that raised), not a broken replica: both stay in
    assert [(backend_row(running, n)["status"], backend_row(running, n)["chkdown"]) for n in "ab"] == [("UP", "0")] * 2
    assert controller.marked_down == 0


@needs_haproxy
@pytest.mark.anyio
async def test_a_replica_that_does_not_answer_in_time_is_a_json_504_not_retried(replicas, plane, client):
    slow, other = await replicas("slow"), await replicas("other")
    running = await plane([slow, other], policy="round_robin", request_timeout_s=0.5)
    await until_up(running, 2)
    slow.hold()
    assert await two_statuses(client, running.url) == [200, 504]
    assert (slow.predicts, other.predicts) == (1, 1)  # the timed-out request was not sent again
    slow.release()


@needs_haproxy
@pytest.mark.anyio
async def test_no_replica_up_is_a_json_503_and_without_retries_a_dropped_request_a_json_502(
    replicas, plane, client
):
    nobody = FakeReplica("nobody")  # never started: its port refuses
    running = await plane([nobody])
    async with client.post(running.url + "/predict", json={"instances": [[1]]}) as response:
        assert response.status == 503 and response.content_type == "application/json"
        assert "error" in await response.json()
    async with client.get(running.url + "/-/health") as response:
        assert response.status == 200 and (await response.json())["healthy_replicas"] == 0
    good = await replicas("good")
    dropping = await HalfAnswerServer("dropping", sends=b"").start()  # closes on a request
    try:
        running = await plane([dropping, good], policy="round_robin", retries=0)
        await until_up(running, 2)
        assert await two_statuses(client, running.url) == [200, 502]
        assert (dropping.requests, good.predicts) == (1, 1)
    finally:
        await dropping.stop()


@needs_haproxy
@pytest.mark.anyio
@pytest.mark.parametrize("sent, status", **SLOW_AND_IDLE_CLIENTS)
async def test_slow_and_idle_clients_are_cut_off_before_they_reach_a_replica(sent, status, replicas, plane):
    a = await replicas("a")
    running = await plane([a], client_header_timeout_s=0.3, client_body_timeout_s=0.3, client_idle_timeout_s=0.3)
    answer = await raw_request(running.url, sent, timeout_s=15)  # returns once HAProxy closes
    if status is None:
        assert answer == b""
    else:
        [(answered, _, _)] = parse_responses(answer)  # the slow headers' 408 is HAProxy's HTML (2.6)
        assert answered == status
    assert a.received == []  # the stalled body did not hold a connection to the replica


@needs_haproxy
@pytest.mark.anyio
async def test_headers_up_to_the_limit_pass_and_larger_ones_get_a_400(replicas, plane, client):
    a = await replicas("a")
    running = await plane([a])
    fits = "x" * (hc.MAX_HEADER_BYTES - 500)  # with the request line and aiohttp's own headers
    async with client.get(running.url + "/echo/big", headers={"X-Big": fits}) as response:
        assert response.status == 201  # the fake replica's echo
        assert ["x-big", fits] in [[k.lower(), v] for k, v in (await response.json())["headers"]]
    async with client.get(running.url + "/echo/big", headers={"X-Big": "x" * hc.MAX_HEADER_BYTES}) as response:
        assert response.status == 400
    async with client.get(running.url + "/echo/after") as response:
        assert response.status == 201  # still up


@needs_haproxy
@pytest.mark.anyio
async def test_the_metrics_count_every_request_and_time_them(replicas, plane, client):
    a = await replicas("a")
    b = await replicas("b")
    running = await plane([a, b], policy="round_robin")
    for i in range(10):
        async with client.post(running.url + "/predict", json={"instances": [[i]]}) as response:
            assert response.status == 200
    async with client.get(running.url + "/-/status/404") as response:
        assert response.status == 404  # an admin path: not a replica's request, not counted
    await wait_until(lambda: running.log.lines >= 10, what="the 10 requests in the log")
    async with client.get(running.url + "/-/metrics?format=json") as response:
        rows = {r["replica"]: r for r in (await response.json())["replicas"]}
    for name in "ab":
        assert rows[name]["count"] == 5 and sum(rows[name]["bucket_counts"]) == 5
        assert rows[name]["p50_s"] is not None
    async with client.get(running.url + "/-/metrics") as response:
        text = await response.text()
    assert 'mltoolkit_balancer_requests_total{replica="a",node="",code="2xx"} 5' in text


@needs_haproxy
@pytest.mark.anyio
async def test_discovery_adds_and_drains_replicas_at_run_time(replicas, plane, client):
    a = await replicas("a")
    b = await replicas("b")
    running = await plane([], discovered=True, policy="round_robin")
    async with client.post(running.url + "/predict", json={"instances": [[1]]}) as response:
        assert response.status == 503
        assert (await response.json()) == {"error": hc.ERRORS[503]}
    members = EngineReplicaSet(HAProxyEngine(running))
    members.add_replica(ReplicaTarget("a", a.url, node="node-0"))
    members.add_replica(ReplicaTarget("b", b.url))
    await members.settled()

    async def served_by() -> set[str]:
        seen = set()
        for _ in range(6):
            async with client.post(running.url + "/predict", json={"instances": [[1]]}) as response:
                assert response.status == 200
                seen.add(response.headers["X-Replica"])
        return seen

    assert await served_by() == {"a", "b"}
    # draining b waits for its request in flight, which still succeeds
    b.hold()
    held = asyncio.create_task(client.post(running.url + "/predict", json={"instances": [[7]]}))
    await wait_until(lambda: b.in_progress == 1 or a.predicts >= 4, what="a request")
    if b.in_progress == 0:  # it went to a: send one more, b's turn
        held = asyncio.create_task(client.post(running.url + "/predict", json={"instances": [[7]]}))
        await wait_until(lambda: b.in_progress == 1, what="a request on b")
    members.drain_replica("b")
    await asyncio.sleep(0.3)
    assert running.draining == {"b"}  # still waiting for the held request
    b.release()
    response = await held
    assert response.status == 200
    response.release()
    await members.settled()
    async with client.get(running.url + "/-/replicas") as response:
        assert [r["name"] for r in (await response.json())["replicas"]] == ["a"]
    assert await served_by() == {"a"}


@needs_haproxy
@pytest.mark.anyio
async def test_only_ewma_sets_weights_and_every_policy_has_a_controller(replicas, plane):
    a = await replicas("a")
    ewma = (await plane([a], policy="ewma")).controller
    assert ewma is not None and ewma.rule is not None
    least = (await plane([a], policy="least_request")).controller
    assert least is not None and least.rule is None  # it still takes broken replicas out


@needs_haproxy
@pytest.mark.anyio
async def test_haproxy_ends_with_its_controller_even_when_killed(replicas, plane):
    a = await replicas("a")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mltoolkit.balancer", "--port", "0", "--data-plane", "haproxy",
        "--replica", f"a={a.url}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        assert "data plane haproxy" in line
        [child] = psutil.Process(process.pid).children()
        assert "haproxy" in child.name()
        workdir = Path(child.cmdline()[child.cmdline().index("-f") + 1]).parent
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
                         what="haproxy to end with its parent")  # fmt: skip
        # nothing could remove its work directory; the next plane to start does, once it is old
        assert (workdir / RUNTIME_SOCKET).exists()
        assert str(workdir) not in remove_stale_workdirs()
        age(workdir)
        await plane([a])
        assert not workdir.exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def age(path: Path) -> None:
    old = time.time() - STALE_WORKDIR_AGE_S - 1
    os.utime(path, (old, old))


def test_only_old_work_directories_with_no_haproxy_behind_them_are_removed(tmp_path):
    def workdir(name: str, old: bool = True) -> Path:
        path = tmp_path / f"{WORKDIR_PREFIX}{name}"
        path.mkdir()
        (path / "haproxy.cfg").write_text("global")
        if old:
            age(path)
        return path

    never_started = workdir("never")
    ended = workdir("ended")
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(ended / RUNTIME_SOCKET))  # closed: the file stays, nobody listens on it
    age(ended)
    starting = workdir("starting", old=False)
    running = workdir("running")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(running / RUNTIME_SOCKET))
        listening.listen()
        age(running)
        (tmp_path / "other-dir").mkdir()
        age(tmp_path / "other-dir")
        (tmp_path / f"{WORKDIR_PREFIX}link").symlink_to(never_started)
        assert remove_stale_workdirs(str(tmp_path)) == [str(ended), str(never_started)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mltoolkit-haproxy-link", "mltoolkit-haproxy-running", "mltoolkit-haproxy-starting", "other-dir"]
    assert starting.exists() and running.exists()
