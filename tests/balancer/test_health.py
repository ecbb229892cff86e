"""Health: the pure rule on hand-built states, and real probes of fake replicas."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from mltoolkit.balancer.health import (
    READY_PATH,
    ProbeOutcome,
    apply_probe,
    mark_unreachable,
    probe,
)
from mltoolkit.balancer.policies import ReplicaState

from .fakes import free_port

READY, REFUSED, FAILED, TIMEOUT = (
    ProbeOutcome.READY, ProbeOutcome.REFUSED, ProbeOutcome.FAILED, ProbeOutcome.TIMEOUT,
)  # fmt: skip


def state() -> ReplicaState:
    return ReplicaState(name="a", url="http://127.0.0.1:9000")


def test_refused_connection_takes_a_replica_out_at_once():
    s = state()
    # Nothing listens: no point waiting for a second probe.
    assert apply_probe(s, REFUSED, unhealthy_after=2) is True
    assert s.healthy is False


def test_other_failures_need_several_in_a_row():
    s = state()
    # One slow or failed probe may be a blip: still in rotation after the first...
    assert apply_probe(s, FAILED, unhealthy_after=2) is False
    assert s.healthy is True and s.consecutive_failures == 1
    # ...out after the second in a row.
    assert apply_probe(s, FAILED, unhealthy_after=2) is True
    assert s.healthy is False


def test_a_passing_probe_resets_the_count_and_puts_it_back():
    s = state()
    apply_probe(s, FAILED, unhealthy_after=2)
    apply_probe(s, READY, unhealthy_after=2)
    # The failure before the pass no longer counts: one more failure is again only a blip.
    assert apply_probe(s, FAILED, unhealthy_after=2) is False
    assert s.healthy is True
    apply_probe(s, REFUSED, unhealthy_after=2)
    assert s.healthy is False
    # Back after one passing probe; the return value says the flag changed.
    assert apply_probe(s, READY, unhealthy_after=2) is True
    assert s.healthy is True and s.consecutive_failures == 0
    assert apply_probe(s, READY, unhealthy_after=2) is False


def test_timeouts_count_like_failures_when_the_replica_answers_nothing():
    s = state()
    apply_probe(s, TIMEOUT, unhealthy_after=2)
    assert apply_probe(s, TIMEOUT, unhealthy_after=2) is True
    assert s.healthy is False


def test_a_busy_replica_is_not_taken_out_for_slow_probes():
    s = state()
    for _ in range(5):
        # It answered proxied requests since the last probe: a probe timeout means "busy", and
        # does not count; five in a row leave it in rotation.
        s.answered_since_probe = 3
        assert apply_probe(s, TIMEOUT, unhealthy_after=2) is False
        assert s.answered_since_probe == 0  # each probe starts a new window
    assert s.healthy is True and s.consecutive_failures == 0
    # A non-200 readiness answer is the replica's own word: it counts, busy or not.
    s.answered_since_probe = 3
    apply_probe(s, FAILED, unhealthy_after=2)
    s.answered_since_probe = 3
    assert apply_probe(s, FAILED, unhealthy_after=2) is True
    # Once it answers nothing between probes, timeouts count again.
    s = state()
    s.answered_since_probe = 1
    apply_probe(s, TIMEOUT, unhealthy_after=2)
    apply_probe(s, TIMEOUT, unhealthy_after=2)
    assert apply_probe(s, TIMEOUT, unhealthy_after=2) is True


def test_mark_unreachable():
    s = state()
    assert mark_unreachable(s, unhealthy_after=2) is True
    assert s.healthy is False
    # Already out: no change to report.
    assert mark_unreachable(s, unhealthy_after=2) is False


@pytest.mark.anyio
async def test_probe_outcomes_against_real_servers(replicas, closing_server):
    good = await replicas("good")
    sick = await replicas("sick")
    sick.health_status = 503
    hung = await replicas("hung")
    hung.health_hangs = True
    async with aiohttp.ClientSession() as session:
        assert await probe(session, good.url, timeout_s=5) is READY
        assert await probe(session, sick.url, timeout_s=5) is FAILED
        # Nothing listening on a fresh free port: refused.
        assert await probe(session, f"http://127.0.0.1:{free_port()}", timeout_s=5) is REFUSED
        # Accepts the connection, then hangs up without answering.
        assert await probe(session, closing_server.url, timeout_s=5) is FAILED
        assert closing_server.connections >= 1
        # Never answers: the probe's own timeout ends it.
        assert await probe(session, hung.url, timeout_s=0.2) is TIMEOUT


@pytest.fixture
async def health_route():
    """A server whose readiness route answers a chosen status; every other path answers 200.

    A 3xx points (``Location``) at ``/elsewhere``, which answers 200 ``ready``: following it
    would turn a moved or wrong health route into a pass.
    """
    answer = {"status": 200}

    async def ready(request: web.Request) -> web.Response:
        status = answer["status"]
        headers = {"Location": "/elsewhere"} if 300 <= status < 400 else {}
        body = None if status in (204, 304) else "ready?"
        return web.Response(status=status, text=body, headers=headers)

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(status=200, text="ready")

    app = web.Application()
    app.router.add_get(READY_PATH, ready)
    app.router.add_get("/elsewhere", elsewhere)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]

    def answering(status: int) -> str:
        answer["status"] = status
        return f"http://{host}:{port}"

    yield answering
    await runner.cleanup()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "status, outcome",
    [
        (200, READY),
        # Only 200 is the replica saying "ready": any other answer keeps it out of rotation.
        (201, FAILED),
        (204, FAILED),  # no body: not the server's readiness document
        (301, FAILED),  # a moved route is not followed to a page that answers 200
        (302, FAILED),
        (307, FAILED),
        (404, FAILED),  # wrong path, or a server that never registered the route
        (429, FAILED),
        (500, FAILED),
        (503, FAILED),  # model not loaded (yet)
    ],
)
async def test_probe_outcome_for_each_class_of_status(health_route, status, outcome):
    async with aiohttp.ClientSession() as session:
        assert await probe(session, health_route(status), timeout_s=5) is outcome
