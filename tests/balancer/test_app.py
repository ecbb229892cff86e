"""The admin routes under /-/ and the app's limits."""

from __future__ import annotations

import pytest

from mltoolkit.balancer import ReplicaTarget

pytestmark = pytest.mark.anyio

CONTRACT_KEYS = {"name", "url", "node", "healthy", "in_flight", "served", "failed"}


async def test_health_and_replicas_routes(replicas, start_balancer, client):
    a = await replicas("a")
    b = await replicas("b")
    lb = await start_balancer(
        [ReplicaTarget("a", a.url, node="node-0"), ReplicaTarget("b", b.url, node="node-1", weight=2)],
        policy="round_robin",
    )
    async with client.get(lb.url + "/-/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "healthy_replicas": 2, "replicas": 2}
    async with client.get(lb.url + "/-/replicas") as response:
        doc = await response.json()
    assert doc["policy"] == "round_robin"
    assert [r["name"] for r in doc["replicas"]] == ["a", "b"]
    a_row, b_row = doc["replicas"]
    assert CONTRACT_KEYS <= set(a_row)
    assert (a_row["url"], a_row["node"], a_row["healthy"]) == (a.url, "node-0", True)
    assert (b_row["node"], b_row["weight"]) == ("node-1", 2)
    assert (a_row["in_flight"], a_row["served"], a_row["failed"]) == (0, 0, 0)
    # Admin routes are the balancer's own: no replica saw any of these requests.
    assert a.received == b.received == []


async def test_other_admin_paths_are_not_proxied(replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer([a])
    async with client.get(lb.url + "/-/nope") as response:
        assert response.status == 404
        assert "/-/replicas" in (await response.json())["error"]
    async with client.post(lb.url + "/-/health") as response:
        assert response.status == 405
    assert a.received == []


async def test_a_too_large_body_is_a_413_and_the_balancer_stays_up(replicas, start_balancer, client):
    a = await replicas("a")
    lb = await start_balancer([a], max_request_bytes=4096)
    async with client.post(lb.url + "/echo/big", data=b"x" * 5000) as response:
        assert response.status == 413
    assert a.received == []
    async with client.post(lb.url + "/echo/small", data=b"x" * 4000) as response:
        assert response.status == 201
    assert a.received == ["/echo/small"]
