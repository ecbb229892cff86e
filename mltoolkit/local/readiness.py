"""Waiting for started processes to answer their health checks."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

# Loopback only: never route health checks through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get_json(url: str, timeout_s: float = 2.0) -> Any:
    with _OPENER.open(url, timeout=timeout_s) as response:
        return json.loads(response.read() or b"null")


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url`` answers 200."""
    try:
        with _OPENER.open(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def http_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url`` gets any HTTP answer in time, even an error status: what a
    liveness check asks (a hung process answers nothing; a busy or draining one still does)."""
    try:
        with _OPENER.open(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass(frozen=True)
class Waiting:
    """A process being waited for: its health URL and how to ask whether it has exited."""

    ready_url: str
    exit_code: Callable[[], int | None]


@dataclass
class ReadinessResult:
    ready: dict[str, float] = field(default_factory=dict)  # name -> seconds until ready
    exited: dict[str, int] = field(default_factory=dict)  # name -> exit code
    pending: list[str] = field(default_factory=list)  # neither, when the wait ended

    @property
    def ok(self) -> bool:
        return not self.exited and not self.pending


def wait_ready(
    waiting: Mapping[str, Waiting],
    timeout_s: float,
    on_ready: Callable[[str, float], None] | None = None,
    interval_s: float = 0.1,
) -> ReadinessResult:
    """Poll every health URL until all answer 200, one exits, or ``timeout_s`` passes.

    Stops at the first exit: a process that crashed will not come up, so waiting on is pointless.
    """
    start = time.monotonic()
    result = ReadinessResult()
    pending = dict(waiting)
    while pending:
        for name, item in list(pending.items()):
            code = item.exit_code()
            if code is not None:
                result.exited[name] = code
                del pending[name]
            elif http_ok(item.ready_url):
                elapsed = time.monotonic() - start
                result.ready[name] = elapsed
                del pending[name]
                if on_ready is not None:
                    on_ready(name, elapsed)
        if result.exited or time.monotonic() - start > timeout_s:
            break
        if pending:
            time.sleep(interval_s)
    result.pending = list(pending)
    return result


def wait_until(
    condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1
) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval_s)
