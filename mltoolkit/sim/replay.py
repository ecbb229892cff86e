"""An open-loop load generator that replays an arrival trace: request i is sent at its trace time
with its cost in the JSON body, whatever happened to earlier requests.

Latency is measured from the *scheduled* send time, so a generator that falls behind does not hide
queueing; ``send_lag_s`` (actual send - scheduled) shows whether it kept up.

Given several URLs (several balancers over one fleet), each request goes to one of them drawn at
random, as an L4 load balancer in front of them would spread requests (column ``entry``).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, Sequence

import aiohttp
import numpy as np
import pandas as pd

from mltoolkit.errors import SpecError
from mltoolkit.sim.replica import REPLICA_HEADER
from mltoolkit.sim.trace import ArrivalTrace

TIMEOUT_ERROR = "no answer within"  # how ``error`` starts for a request that timed out
COLUMNS = ["scheduled_s", "latency_s", "status", "replica", "error", "cost_s", "send_lag_s", "entry"]


@dataclass
class _Outcome:
    latency_s: float = math.nan
    status: int = 0
    replica: str | None = None
    error: str | None = None
    send_lag_s: float = math.nan


async def replay_async(
    trace: ArrivalTrace,
    url: str | Sequence[str],
    *,
    path: str = "/predict",
    timeout_s: float = 60.0,
    start_delay_s: float = 0.05,
    start_at: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Replay ``trace`` against ``url + path``; one row per request (``COLUMNS``).

    ``url`` may be a list of URLs: each request then goes to one drawn at random (stream
    ``seed``); ``entry`` is its index. ``start_at`` is the loop time of trace time 0 (default:
    now + ``start_delay_s``), so callers can schedule other actions (faults) on the same clock.
    ``status`` 0 means no HTTP answer (``error`` says why); ``latency_s`` is NaN then.
    """
    urls = [url] if isinstance(url, str) else list(url) if isinstance(url, (list, tuple)) else [url]
    if not urls:
        raise SpecError("url", url, "an http:// or https:// URL, or a non-empty list of them")
    for one in urls:
        if not isinstance(one, str) or not one.startswith(("http://", "https://")):
            raise SpecError("url", one, "an http:// or https:// URL")
    if not (isinstance(timeout_s, (int, float)) and 0 < timeout_s <= 3600):
        raise SpecError("timeout_s", timeout_s, "seconds, > 0 and <= 3600")
    targets = [one.rstrip("/") + path for one in urls]
    entry = np.random.default_rng(seed).integers(0, len(targets), size=len(trace))
    loop = asyncio.get_running_loop()
    start = loop.time() + start_delay_s if start_at is None else start_at
    outcomes = [_Outcome() for _ in range(len(trace))]
    connector = aiohttp.TCPConnector(limit=0, force_close=False, enable_cleanup_closed=True)
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def send(i: int, scheduled: float) -> None:
            outcome = outcomes[i]
            outcome.send_lag_s = loop.time() - scheduled
            try:
                target = targets[entry[i]]
                async with session.post(target, json={"cost": float(trace.costs_s[i])}) as response:
                    await response.read()
                    outcome.status = response.status
                    outcome.replica = response.headers.get(REPLICA_HEADER)
                    if response.status != 200:
                        outcome.error = f"HTTP {response.status}"
                    outcome.latency_s = loop.time() - scheduled
            except asyncio.TimeoutError:
                outcome.error = f"{TIMEOUT_ERROR} {timeout_s:g} s"
            except aiohttp.ClientError as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"[:200]

        tasks: list[asyncio.Task[None]] = []
        for i, t in enumerate(trace.times_s):
            scheduled = start + float(t)
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(send(i, scheduled)))
        await asyncio.gather(*tasks)

    return pd.DataFrame(
        {
            "scheduled_s": trace.times_s,
            "latency_s": [o.latency_s for o in outcomes],
            "status": np.array([o.status for o in outcomes], dtype=int),
            "replica": [o.replica for o in outcomes],
            "error": [o.error for o in outcomes],
            "cost_s": trace.costs_s,
            "send_lag_s": [o.send_lag_s for o in outcomes],
            "entry": entry,
        },
        columns=COLUMNS,
    )


def replay(trace: ArrivalTrace, url: str, **kwargs: Any) -> pd.DataFrame:
    """Blocking ``replay_async`` (not from inside a running event loop; await that instead)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(replay_async(trace, url, **kwargs))
    raise RuntimeError("replay() called inside a running event loop; use await replay_async(...)")
