"""The upstream side: pooled keep-alive connections, and connections that fail mid-request."""

from __future__ import annotations

import asyncio

import pytest

from mltoolkit.balancer.messages import ProxyRequest

from .fakes import HalfAnswerServer, OneAnswerPerConnection

pytestmark = pytest.mark.anyio


async def predict(client, url: str) -> tuple[int, str | None]:
    async with client.post(url + "/predict", json={"instances": [[1, 2]]}) as response:
        await response.read()
        return response.status, response.headers.get("X-Replica")


async def test_sequential_requests_reuse_one_upstream_connection(replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer([a], health_interval_s=60)
    for _ in range(20):
        assert await predict(client, lb.url) == (200, "a")
    # 20 requests, one after the other: all of them came over one connection from the balancer.
    assert a.predicts == 20
    assert len(a.peers) == 1
    assert lb.balancer.report()["replicas"][0]["connections_opened"] == 1


async def test_concurrent_requests_open_at_most_the_pool_limit(replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer([a], health_interval_s=60, max_connections_per_replica=2)
    a.hold()
    tasks = [asyncio.create_task(predict(client, lb.url)) for _ in range(6)]
    while a.in_progress < 2:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # give a third connection time to appear if the limit were broken
    assert a.in_progress == 2  # the other 4 wait in the balancer for a pooled connection
    a.release()
    assert [status for status, _ in await asyncio.gather(*tasks)] == [200] * 6
    assert len(a.peers) == 2


async def test_a_pooled_connection_the_replica_closed_is_replaced_without_a_failure(
    replicas, start_balancer, client
):
    a = await replicas("a")
    lb = await start_balancer([a], health_interval_s=60)
    assert await predict(client, lb.url) == (200, "a")
    await a.stop()  # closes the balancer's idle keep-alive connection...
    await a.start()  # ...and listens again on the same port
    # The balancer finds its pooled connection dead when it sends on it; it sends once more on
    # a new connection to the same replica, and the client never sees the failure.
    assert await predict(client, lb.url) == (200, "a")
    state = lb.state("a")
    assert (state.served, state.failed, state.healthy) == (2, 0, True)


async def test_a_pooled_connection_dropped_as_it_is_reused_is_replaced_without_a_failure(
    start_balancer, client
):
    server = await OneAnswerPerConnection().start()
    try:
        lb = await start_balancer([server], health_interval_s=60)
        for _ in range(3):
            # Each request after the first goes out on the pooled connection, which the server
            # closes without answering; the balancer sends it again on a new connection to the
            # same replica (it never saw the first copy), so the client gets the answer.
            assert await predict(client, lb.url) == (200, "oneshot")
        assert (server.requests, server.dropped) == (3, 2)
        # The same on the engine's other path (the one taken when a request had to wait).
        request = ProxyRequest(b"POST", b"/predict", [], b"{}", "127.0.0.1", b"lb")
        for _ in range(2):
            assert (await lb.balancer.handle(request)).status == 200
        assert (server.requests, server.dropped) == (5, 4)
        state = lb.state("oneshot")
        assert (state.served, state.failed, state.healthy) == (5, 0, True)
    finally:
        await server.stop()


async def test_a_connection_lost_mid_answer_is_retried_on_another_replica(
    replicas, start_balancer, client
):
    half = await HalfAnswerServer().start()
    try:
        good = await replicas("good")
        lb = await start_balancer([half, good], policy="round_robin", health_interval_s=60)
        # round robin tries half first: it sends 7 of 100 body bytes and hangs up.
        assert await predict(client, lb.url) == (200, "good")
        assert half.requests == 1
        assert (lb.state("half").failed, lb.state("half").healthy) == (1, False)
        assert lb.state("good").served == 1
    finally:
        await half.stop()


async def test_a_connection_lost_mid_answer_without_retries_is_a_502_and_the_balancer_stays_up(
    replicas, start_balancer, client
):
    half = await HalfAnswerServer().start()
    try:
        good = await replicas("good")
        lb = await start_balancer([half, good], policy="round_robin", health_interval_s=60, retries=0)
        async with client.post(lb.url + "/predict", json={"instances": [[1]]}) as response:
            assert response.status == 502
            assert response.content_type == "application/json"
            error = (await response.json())["error"]
        assert "half" in error and "before answering" in error
        # half is out of rotation now; the next request is served by good.
        assert await predict(client, lb.url) == (200, "good")
    finally:
        await half.stop()
