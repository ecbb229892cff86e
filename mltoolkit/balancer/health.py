"""Active health checks: one probe of a replica's readiness, and what its outcome means.

``probe`` is the only side effect (one ``GET /v2/health/ready``; only a 200 from that route
itself is ready, redirects are not followed); ``apply_probe`` is the pure rule: a refused
connection takes the replica out of rotation at once, other failures (non-200 answers,
timeouts, dropped connections) after ``unhealthy_after`` in a row, and one passing probe
puts it back. A probe that merely timed out does not count against a replica that answered
proxied requests since the previous probe: it is busy, not gone (on a loaded machine a busy
server can be slow to answer its health route), and taking it out would only shift its load.
"""

from __future__ import annotations

import asyncio
import enum

import aiohttp

from mltoolkit.balancer.policies import ReplicaState

READY_PATH = "/v2/health/ready"


class ProbeOutcome(enum.Enum):
    READY = "ready"  # answered 200
    REFUSED = "refused"  # could not connect at all: nothing listens there
    TIMEOUT = "timeout"  # no answer within the probe's timeout
    FAILED = "failed"  # answered something other than 200, or dropped the connection


def apply_probe(state: ReplicaState, outcome: ProbeOutcome, unhealthy_after: int) -> bool:
    """Update ``state`` after a probe; True if its ``healthy`` flag changed."""
    was_healthy = state.healthy
    busy_answering = state.answered_since_probe > 0
    state.answered_since_probe = 0
    if outcome is ProbeOutcome.READY:
        state.consecutive_failures = 0
        state.healthy = True
    elif outcome is ProbeOutcome.TIMEOUT and busy_answering and state.healthy:
        pass  # slow to probe but answering requests: neither a failure nor a pass
    else:
        state.consecutive_failures += 1
        if outcome is ProbeOutcome.REFUSED or state.consecutive_failures >= unhealthy_after:
            state.healthy = False
    return state.healthy != was_healthy


def mark_unreachable(state: ReplicaState, unhealthy_after: int) -> bool:
    """A proxied request could not reach the replica: out of rotation now; True if that changed."""
    was_healthy = state.healthy
    state.healthy = False
    state.consecutive_failures = max(state.consecutive_failures, unhealthy_after)
    return was_healthy


async def probe(session: aiohttp.ClientSession, base_url: str, timeout_s: float) -> ProbeOutcome:
    """One readiness probe of the replica at ``base_url``."""
    try:
        async with session.get(
            base_url + READY_PATH,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,  # a moved route is a failure, not a pass on another page
        ) as response:
            await response.read()
            return ProbeOutcome.READY if response.status == 200 else ProbeOutcome.FAILED
    except aiohttp.ClientConnectorError:
        return ProbeOutcome.REFUSED
    except asyncio.TimeoutError:  # before ClientError: aiohttp's timeouts are both
        return ProbeOutcome.TIMEOUT
    except (aiohttp.ClientError, OSError):
        return ProbeOutcome.FAILED
