"""Waking an asyncio loop at a precise monotonic time, for open-loop load tests.

``asyncio.sleep`` wakes through ``epoll_wait``, whose timeout has millisecond granularity and
which Python rounds up to the next millisecond: measured on a 2-core machine, a load test's
sends left a median 1.5 ms after their scheduled time, and since latency counts from the
scheduled time, every latency carried that lag. On Linux a ``timerfd`` armed at an absolute
``CLOCK_MONOTONIC`` time (the clock of ``loop.time()``) is a high-resolution timer the loop
watches like a socket: it fires within tens of microseconds. Elsewhere, or if the system call is
unavailable, ``asyncio.sleep`` is used.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
import time

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or time.get_clock_info("monotonic").implementation != (
        "clock_gettime(CLOCK_MONOTONIC)"
    ):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create  # noqa: B018 - raises AttributeError where missing
        libc.timerfd_settime  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


class PreciseTimer:
    """``await timer.sleep_until(t)`` resumes at ``loop.time() >= t``, precisely where a
    timerfd exists (``precise`` says whether it does). ``close()`` releases the descriptor."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fd = -1
        self._waiter: asyncio.Future[None] | None = None
        self._libc = _libc()
        if self._libc is not None:
            fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                loop.add_reader(fd, self._fired)

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _arm(self, when: float) -> bool:
        assert self._libc is not None
        seconds = int(when)
        spec = _Itimerspec(
            _Timespec(0, 0), _Timespec(seconds, max(1, int((when - seconds) * 1e9)))
        )
        return self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) == 0

    async def sleep_until(self, when: float) -> None:
        delay = when - self._loop.time()
        if delay <= 0:
            return
        if self._fd < 0 or not self._arm(when):
            await asyncio.sleep(delay)
            return
        self._waiter = self._loop.create_future()
        await self._waiter

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
