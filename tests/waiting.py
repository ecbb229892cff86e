"""Polling for tests that wait on other threads or processes."""

import time


def wait_for(condition, timeout_s=60.0, interval_s=0.02):
    """Poll until ``condition()`` is truthy; the timeout is a safety net, not a measurement."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s: {condition}")
