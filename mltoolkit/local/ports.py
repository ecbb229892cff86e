"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST_PORT = 10_000  # the lowest port picked below the ephemeral range
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_LOW = 32768  # Linux's default, when the file cannot be read


def ephemeral_low(path: Path = EPHEMERAL_RANGE_FILE) -> int:
    """The first port of the range the kernel gives outgoing connections."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_LOW


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports that were free a moment ago.

    They are picked below the kernel's ephemeral range (when it leaves room), so an outgoing
    connection made meanwhile (a health check, a client) cannot take one before our process binds
    it, as it could a port the kernel handed out for ``bind(0)``. All sockets are held open until
    every port is chosen, so the ports differ from each other; another program may still take one
    (the caller reports that).
    """
    low = ephemeral_low()
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            ports.append(_bind_below(sock, host, low))
        return ports


def _bind_below(sock: socket.socket, host: str, low: int) -> int:
    if low - LOWEST_PORT >= 1000:
        for _ in range(100):
            port = random.randrange(LOWEST_PORT, low)
            try:
                sock.bind((host, port))
                return port
            except OSError:  # taken (a failed bind leaves the socket free to try another)
                continue
    sock.bind((host, 0))
    return sock.getsockname()[1]
