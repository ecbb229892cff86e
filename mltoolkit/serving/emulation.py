"""Emulated service time: a replica that behaves like a single-core machine of a chosen speed.

With ``--service-ms MS`` (env ``MLTOOLKIT_SERVICE_MS``) each predict or infer request waits its
turn for the replica's one emulated core, first come first served, and holds it for
``MS x slowdown`` milliseconds in ``asyncio.sleep`` -- no CPU -- before the model predicts for
real. Such a replica serves at most ``1000 / (MS x slowdown)`` requests/s whatever the host's
speed, and a request's latency is its wait in that queue plus its service time, as on a busy
machine. Several of them on a small host behave like as many separate machines while the host
has CPU to spare for the HTTP work (which is not emulated): notebook 03 uses this so that the
replicas, not the host, limit what the fleet serves.

0 (the default) turns it off: the model's own compute is the cost, and ``--slowdown`` stretches
each predict call instead (mltoolkit/serving/batching.py).
"""

from __future__ import annotations

import asyncio


class EmulatedCore:
    """One emulated core: requests hold it for ``service_s`` each, one at a time, in arrival order."""

    def __init__(self, service_s: float) -> None:
        self.service_s = service_s
        self._lock = asyncio.Lock()  # wakes its waiters in arrival order

    async def serve(self) -> None:
        """Wait for the core, then hold it for the service time (sleeping, no CPU)."""
        async with self._lock:
            await asyncio.sleep(self.service_s)


def emulated_core(service_ms: float, slowdown: float) -> EmulatedCore | None:
    """The core a replica with ``--service-ms`` and ``--slowdown`` gets; None when it is off."""
    if service_ms <= 0:
        return None
    return EmulatedCore(service_ms * slowdown / 1000.0)
