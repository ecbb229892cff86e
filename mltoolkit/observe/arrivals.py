"""When an open-loop load test sends its requests: offsets from the test start, pure."""

from __future__ import annotations

import numpy as np

ARRIVALS = ("constant", "poisson")


def arrival_offsets(
    rate: float,
    duration: float,
    arrivals: str = "constant",
    *,
    max_requests: int | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Send times in seconds from the start, all in ``[0, duration)``, ascending.

    ``"constant"``: one request every ``1/rate`` seconds, the first at 0, so
    ``floor(rate * duration)`` requests give or take one (floating point at the end).
    ``"poisson"``: exponential gaps of mean ``1/rate`` (a Poisson process); ``seed`` makes it
    repeatable. ``max_requests`` keeps only the first that many.
    """
    if arrivals == "constant":
        candidates = int(np.floor(rate * duration)) + 1
        offsets = np.arange(candidates, dtype=float) / rate
    elif arrivals == "poisson":
        rng = np.random.default_rng(seed)
        chunk = max(16, int(rate * duration * 1.2) + 16)
        gaps = rng.exponential(1.0 / rate, size=chunk)
        offsets = np.cumsum(gaps)
        while offsets[-1] < duration:
            more = offsets[-1] + np.cumsum(rng.exponential(1.0 / rate, size=chunk))
            offsets = np.concatenate([offsets, more])
    else:
        raise ValueError(f"arrivals must be one of {ARRIVALS}, not {arrivals!r}")
    offsets = offsets[offsets < duration]
    if max_requests is not None:
        offsets = offsets[:max_requests]
    return offsets
