"""What a long-running process of the toolkit (replica, balancer) does once it has started."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect once, then move every object that exists now (the imports, the model) out of the
    garbage collector's reach; returns how many. Without this, the first full collection after
    start scanned every object the imports made, a 100-300 ms pause that landed in the first
    load test (measured on a loaded 2-core machine: a 170-280 ms stall in the first seconds,
    none in the second test). Later collections scan only what serving allocates."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
