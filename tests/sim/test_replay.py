"""The open-loop trace replayer against a real in-process fleet."""

import numpy as np
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.sim.fleet_spec import ReplicaSpec
from mltoolkit.sim.replay import COLUMNS, replay, replay_async
from mltoolkit.sim.trace import ArrivalTrace

from .conftest import running_fleet


def test_replay_sends_each_request_with_its_cost_and_measures_from_the_schedule(run):
    # Five requests at t = 0 on a 1-slot replica, cost 0.05 each: they queue behind each other, so
    # the k-th answer cannot come before k x 0.05 s after the (common) scheduled time. An
    # open-loop sender does not wait for answers before sending, and measures from the schedule,
    # so queueing shows up in latency_s.
    trace = ArrivalTrace(np.array([0, 0, 0, 0, 0, 0.1]), np.array([0.05] * 5 + [0.0]))

    async def scenario():
        async with running_fleet(ReplicaSpec("a", slots=1)) as fleet:
            frame = await replay_async(trace, fleet.urls["a"])
            return frame, fleet.replicas["a"].counters

    frame, counters = run(scenario())
    assert list(frame.columns) == COLUMNS and len(frame) == 6
    assert (frame["status"] == 200).all() and (frame["replica"] == "a").all()
    assert frame["error"].isna().all()
    # The replica saw exactly the trace's costs: busy time = 5 x 0.05 + 0 s.
    assert counters.served == 6 and counters.busy_s == pytest.approx(0.25)
    waits = np.sort(frame["latency_s"].to_numpy()[:5])
    assert np.all(waits >= np.arange(1, 6) * 0.05 - 1e-3)
    # The last request (cost 0) was scheduled at 0.1 s, while the queue was still draining
    # until 0.25 s: it waited behind the backlog.
    assert frame["latency_s"].iloc[5] >= 0.25 - 0.1 - 1e-3
    assert (frame["send_lag_s"] >= 0).all()


def test_requests_without_an_answer_are_recorded_not_raised(run):
    trace = ArrivalTrace(np.array([0.0, 0.01]), np.array([0.0, 0.0]))

    async def scenario():
        async with running_fleet(ReplicaSpec("a")) as fleet:
            url = fleet.urls["a"]
            await fleet.kill("a", "close")
            return await replay_async(trace, url)

    frame = run(scenario())
    assert (frame["status"] == 0).all()
    assert frame["latency_s"].isna().all()
    assert frame["error"].str.contains("Connect").all()


def test_replay_rejects_a_bad_url_before_sending():
    with pytest.raises(SpecError, match="url"):
        replay(ArrivalTrace(np.array([0.0]), np.array([0.0])), "127.0.0.1:80")


def test_replay_spreads_requests_over_several_urls_at_random(run):
    # Two replicas stand in for two balancers behind an L4 front: each request goes to one of
    # the URLs drawn at random (seeded), and ``entry`` says which; the replica that answered
    # confirms it.
    trace = ArrivalTrace(np.linspace(0, 0.2, 40), np.zeros(40))

    async def scenario():
        async with running_fleet(ReplicaSpec("a"), ReplicaSpec("b")) as fleet:
            urls = [fleet.urls["a"], fleet.urls["b"]]
            return await replay_async(trace, urls, seed=1), await replay_async(trace, urls, seed=1)

    frame, again = run(scenario())
    assert (frame["status"] == 200).all()
    assert set(frame["entry"]) == {0, 1}
    assert (frame["replica"] == frame["entry"].map({0: "a", 1: "b"})).all()
    assert frame["entry"].tolist() == again["entry"].tolist()  # reproducible
    with pytest.raises(SpecError, match="url"):
        replay(trace, [])
    with pytest.raises(SpecError, match="url"):
        replay(trace, ["http://127.0.0.1:1", "127.0.0.1:2"])
