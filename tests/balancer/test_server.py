"""The client side over raw sockets: framing, pipelining, hostile input, slow clients, the cap."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mltoolkit.balancer import BalancerConfig, ReplicaTarget, start_server
from mltoolkit.balancer.server import raise_open_file_limit

from .fakes import SLOW_AND_IDLE_CLIENTS, free_port, parse_responses, raw_request, wait_until

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


def echoed(body: bytes) -> dict:
    document = json.loads(body)
    document["body"] = base64.b64decode(document.pop("body_b64"))
    document["headers"] = {k.lower(): v for k, v in document["headers"]}
    return document


async def test_a_chunked_request_body_is_passed_on_whole(replicas, start_balancer):
    a = await replicas("a")
    lb = await start_balancer([a])
    data = (
        b"POST /echo/chunked HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
    )
    [(status, headers, body)] = parse_responses(await raw_request(lb.url, data))
    assert status == 201
    sent = echoed(body)
    # The replica got the de-chunked body with a length, not the client's chunk framing.
    assert sent["body"] == b"hello, world"
    assert sent["headers"]["content-length"] == "12"
    assert "transfer-encoding" not in sent["headers"]
    assert sent["headers"]["content-type"] == "application/octet-stream"


async def test_a_large_binary_body_passes_both_ways_byte_for_byte(replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer([a])
    body = os.urandom(900 * 1024)  # the fake replica takes up to 1 MiB
    async with client.post(lb.url + "/echo/big", data=body) as response:
        assert response.status == 201
        assert echoed(await response.read())["body"] == body


async def test_pipelined_requests_are_answered_in_order(replicas, start_balancer):
    a = await replicas("a")
    lb = await start_balancer([a])
    data = b"".join(
        b"GET /echo/%d HTTP/1.1\r\nHost: lb\r\n\r\n" % i for i in range(5)
    ) + b"GET /echo/last HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
    responses = parse_responses(await raw_request(lb.url, data))  # all sent in one write
    assert [status for status, _, _ in responses] == [201] * 6
    assert [echoed(body)["path"] for _, _, body in responses] == [
        "/echo/0", "/echo/1", "/echo/2", "/echo/3", "/echo/4", "/echo/last"
    ]  # fmt: skip
    assert responses[-1][1]["connection"] == "close"


async def test_an_absolute_form_target_is_served_as_its_path(replicas, start_balancer):
    a = await replicas("a")
    lb = await start_balancer([a])
    data = b"GET http://example.invalid:8080/echo/x?q=1 HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
    [(status, _, body)] = parse_responses(await raw_request(lb.url, data))
    assert status == 201
    sent = echoed(body)
    assert (sent["path"], sent["query"]) == ("/echo/x", "q=1")
    assert sent["headers"]["x-forwarded-host"] == "example.invalid:8080"
    # Admin routes too.
    data = b"GET http://lb/-/health HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
    [(status, _, body)] = parse_responses(await raw_request(lb.url, data))
    assert status == 200 and json.loads(body)["status"] == "ok"


@pytest.mark.parametrize(
    "request_bytes, status, words",
    [
        (b"GET nonsense HTTP/1.1\r\nHost: lb\r\n\r\n", 400, "malformed"),
        (b"GET *x HTTP/1.1\r\nHost: lb\r\n\r\n", 400, "neither a path"),
        (b"CONNECT example.invalid:443 HTTP/1.1\r\nHost: lb\r\n\r\n", 400, "neither a path"),
        (b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", 400, "malformed"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "malformed"),  # TLS hello
        (b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "exceed"),
    ],
)
async def test_bad_requests_get_a_json_4xx_and_the_balancer_stays_up(
    request_bytes, status, words, replicas, start_balancer, client
):
    a = await replicas("a")
    lb = await start_balancer([a])
    [(answered, headers, body)] = parse_responses(await raw_request(lb.url, request_bytes))
    assert answered == status
    assert headers["content-type"] == "application/json"
    assert words in json.loads(body)["error"]
    assert a.received == []
    async with client.get(lb.url + "/echo/after") as response:
        assert response.status == 201


async def test_an_oversized_content_length_is_refused_before_the_body(replicas, start_balancer):
    a = await replicas("a")
    lb = await start_balancer([a], max_request_bytes=4096)
    # Only the headers are sent, and the connection stays open: the 413 comes at once anyway.
    host, port = lb.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"POST /predict HTTP/1.1\r\nHost: lb\r\nContent-Length: 1000000000\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 15)  # ends: the balancer closes
    finally:
        writer.close()
    [(status, headers, body)] = parse_responses(answer)
    assert status == 413
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert "1000000000" in error and "4096" in error and "--max-request-bytes" in error
    assert a.received == []


async def test_an_oversized_chunked_body_is_a_413(replicas, start_balancer):
    a = await replicas("a")
    lb = await start_balancer([a], max_request_bytes=4096)
    chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
    data = b"POST /echo/c HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2
    [(status, _, body)] = parse_responses(await raw_request(lb.url, data))
    assert status == 413 and "4096" in json.loads(body)["error"]
    assert a.received == []


@pytest.mark.parametrize("sent, status", **SLOW_AND_IDLE_CLIENTS)
async def test_slow_and_idle_clients_are_cut_off(sent, status, replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer(
        [a], client_header_timeout_s=0.3, client_body_timeout_s=0.3, client_idle_timeout_s=0.3
    )
    answer = await raw_request(lb.url, sent, timeout_s=15)  # returns once the balancer closes
    if status is None:
        assert answer == b""
    else:
        [(answered, _, body)] = parse_responses(answer)
        assert answered == status
        assert "not received within 0.3 s" in json.loads(body)["error"]
        async with client.get(lb.url + "/-/replicas") as response:
            assert (await response.json())["clients"]["timed_out"] == 1
    assert a.received == []


async def test_a_busy_keep_alive_connection_is_not_cut_off(replicas, start_balancer, client):
    a = await replicas("a", delay_s=0.5)  # each answer takes longer than the client timeouts
    lb = await start_balancer(
        [a], client_header_timeout_s=0.2, client_body_timeout_s=0.2, client_idle_timeout_s=0.2
    )
    for _ in range(2):
        async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
            assert response.status == 200


async def test_connections_over_the_cap_are_refused_with_a_503(replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer([a], max_client_connections=3)
    host, port = lb.url.removeprefix("http://").split(":")
    held = []
    for i in range(3):  # three keep-alive connections, each proven served
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /echo/%d HTTP/1.1\r\nHost: lb\r\n\r\n" % i)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        held.append(writer)
    try:
        [(status, _, body)] = parse_responses(
            await raw_request(lb.url, b"GET /echo/x HTTP/1.1\r\nHost: lb\r\n\r\n")
        )
        assert status == 503
        assert "--max-client-connections" in json.loads(body)["error"]
        assert a.received == ["/echo/0", "/echo/1", "/echo/2"]
    finally:
        for writer in held:
            writer.close()
    # Once those are closed, new connections are served again.
    await wait_until(lambda: lb.server.client_report()["open"] == 0, what="connections closed")
    async with client.get(lb.url + "/-/replicas") as response:
        assert (await response.json())["clients"]["refused"] == 1


async def test_reuse_port_lets_two_balancers_share_a_port(replicas):
    a = await replicas("a")
    port = free_port()
    config = BalancerConfig(replicas=(ReplicaTarget("a", a.url),), port=port, reuse_port=True)
    first = await start_server(config)
    try:
        second = await start_server(config)
        await second.close(grace_s=1)
        with pytest.raises(OSError):  # without SO_REUSEPORT the port is taken
            await start_server(BalancerConfig(replicas=(ReplicaTarget("a", a.url),), port=port))
    finally:
        await first.close(grace_s=1)


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = (
        "import resource\n"
        "from mltoolkit.balancer.server import raise_open_file_limit\n"
        "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]\n"
        "print(before, raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    low = min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
        preexec_fn=lower,
    ).stdout.split()  # fmt: skip
    expected = hard if hard != resource.RLIM_INFINITY else max(low, 1 << 20)
    assert [int(x) for x in out] == [low, expected, expected]
    assert raise_open_file_limit() >= soft


async def test_the_balancer_answers_while_idle_connections_pile_up(
    replicas, start_balancer, client, caplog
):
    """Many idle connections over the cap: refused cleanly, others still served, one log line."""
    caplog.set_level(logging.INFO, logger="mltoolkit.balancer")
    a = await replicas("a")
    lb = await start_balancer([a], max_client_connections=50)
    host, port = lb.url.removeprefix("http://").split(":")
    socks = []
    try:
        for _ in range(120):
            sock = socket.socket()
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            socks.append(sock)
        await wait_until(lambda: lb.server.client_report()["refused"] >= 70, what="refusals")
        assert lb.server.client_report()["open"] == 50
    finally:
        for sock in socks:
            sock.close()
    await wait_until(lambda: lb.server.client_report()["open"] == 0, what="connections closed")
    async with client.get(lb.url + "/echo/after") as response:
        assert response.status == 201
    # 70+ refusals, one warning: the log does not fill up with them
    refusals = [r for r in caplog.records if "refusing client connections" in r.getMessage()]
    assert len(refusals) == 1 and "--max-client-connections" in refusals[0].getMessage()
