"""Loading the provider SDKs fast: the garbage collector paused while they import and while the
program first runs under mocks (pure standard library, no Pulumi import here).

``pulumi_gcp.compute`` and ``pulumi_kubernetes.core.v1`` alone define tens of thousands of
classes and functions; importing them, then registering the first resources (when Pulumi
evaluates their type hints once), allocates so many long-lived objects that CPython's cyclic
collector runs its full collections again and again, re-scanning everything just imported. Those
objects are module-level, never garbage: pausing the collector for the duration loses nothing and
cut a fresh process's ``plan()`` by a third to a half here (``benchmarks/plan_cold.py``). The
collector is switched back on (if it was on) when the block ends, and collects as usual.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off (restored afterwards)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
