"""Many replicas in one loop, and the fleet's control port."""

import asyncio

import aiohttp

from mltoolkit.sim.costs import CostDistribution
from mltoolkit.sim.fleet import Fleet
from mltoolkit.sim.fleet_spec import ReplicaSpec, uneven_fleet

from .conftest import post_predict, running_fleet, wait_until


def test_sixteen_replicas_share_one_loop_each_on_its_own_port(run):
    async def scenario():
        spec = uneven_fleet(16, slots=2, costs=CostDistribution("constant", 0.01))
        async with Fleet(spec) as fleet, aiohttp.ClientSession() as s:
            ports = {url.rsplit(":", 1)[1] for url in fleet.urls.values()}
            assert len(ports) == 16
            names = []
            for name, url in fleet.urls.items():
                async with s.get(url + "/v2/health/ready") as r:
                    assert r.status == 200
                    names.append(r.headers["X-Replica"])
            assert names == list(fleet.urls) == [f"r{i:02d}" for i in range(16)]
            # one request each, concurrently: a slow replica (speed 1/3) takes 3x as long
            answers = await asyncio.gather(*(post_predict(s, u, {"cost": 0.03}) for u in fleet.urls.values()))
            service = {body["replica"]: body["service_s"] for _, _, body in answers}
            assert service["r03"] == service["r15"] == 0.03 * 3
            assert service["r00"] == 0.03
        # stopped: every port is closed again
        async with aiohttp.ClientSession() as s:
            for url in fleet.urls.values():
                try:
                    await s.get(url + "/v2/health/ready")
                except aiohttp.ClientConnectorError:
                    continue
                raise AssertionError(f"{url} still answers after stop()")

    run(scenario())


def test_control_port_reports_counters_and_injects_faults(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("a", slots=2), ReplicaSpec("b")) as fleet, \
                aiohttp.ClientSession() as s:
            control = fleet.control_url
            await post_predict(s, fleet.urls["a"], {"cost": 0.02})
            async with s.get(control + "/replicas") as r:
                stats = {row["name"]: row for row in (await r.json())["replicas"]}
            assert stats["a"]["served"] == 1 and stats["a"]["busy_s"] == 0.02
            assert stats["a"]["url"] == fleet.urls["a"] and stats["b"]["served"] == 0

            async with s.post(control + "/replicas/a/slowdown", json={"factor": 4}) as r:
                assert r.status == 200 and (await r.json())["slowed"] is True
            _, _, body = await post_predict(s, fleet.urls["a"], {"cost": 0.02})
            assert body["service_s"] == 0.08

            async with s.post(control + "/replicas/b/die", json={"mode": "close"}) as r:
                assert r.status == 200 and (await r.json())["dead"] == "close"
            try:
                await post_predict(s, fleet.urls["b"], {"cost": 0.0})
                raise AssertionError("a dead replica answered")
            except aiohttp.ClientConnectorError:
                pass

            for path, body, status, named in [
                ("/replicas/zz/slowdown", {"factor": 2}, 404, "zz"),
                ("/replicas/a/slowdown", {"factor": 0.5}, 400, "factor"),
                ("/replicas/a/slowdown", ["x"], 400, "JSON object"),
                ("/replicas/a/die", {"mode": "explode"}, 400, "mode"),
            ]:
                async with s.post(control + path, json=body) as r:
                    assert r.status == status and named in (await r.json())["error"]
            async with s.get(control + "/replicas") as r:
                assert r.status == 200  # still up after the bad calls

    run(scenario())


def test_in_flight_header_counts_waiting_and_busy_on_the_replica(run):
    async def scenario():
        async with running_fleet(ReplicaSpec("a", slots=1)) as fleet, aiohttp.ClientSession() as s:
            url, replica = fleet.urls["a"], fleet.replicas["a"]
            held = [asyncio.ensure_future(post_predict(s, url, {"cost": 30})) for _ in range(2)]
            await wait_until(lambda: replica.in_flight == 2)
            async with s.get(url + "/v2/health/ready") as r:
                assert r.headers["X-In-Flight"] == "2"  # one in service, one waiting
            await fleet.kill("a", "close")
            await asyncio.gather(*held, return_exceptions=True)

    run(scenario())
