"""Server processes for the benchmarks: started pinned to a core in their own process group,
polled until ready, and stopped with their whole group (children included) on every exit path."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence


class ServerFailed(RuntimeError):
    """A server exited or never became ready; the message ends with its log's last lines."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """``command`` run by taskset on core ``cpu`` (children inherit the pin); None: unpinned."""
    return ["taskset", "-c", str(cpu), *command] if cpu is not None else list(command)


@dataclass(frozen=True)
class HttpAnswer:
    status: int  # 0: no HTTP answer
    headers: Mapping[str, str]  # names in lower case (HAProxy sends them so)
    body: bytes


def http_request(url: str, body: bytes | None = None, timeout_s: float = 10.0) -> HttpAnswer:
    """A GET, or a JSON POST when ``body`` is given."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body is not None else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return HttpAnswer(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, _lower(exc.headers), exc.read())
    except (urllib.error.URLError, OSError):
        return HttpAnswer(0, {}, b"")


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def post_json(url: str, payload: Any, timeout_s: float = 30.0) -> Any:
    answer = http_request(url, json.dumps(payload).encode(), timeout_s)
    if answer.status != 200:
        raise ServerFailed(
            f"POST {url} answered {answer.status or 'nothing'}: {answer.body[:500]!r}"
        )
    return json.loads(answer.body)


class ServerProcess:
    """One server as a child process; ``stop()`` is idempotent and also kills its children.

    Output goes to ``log_path`` (never to a pipe nobody reads, which would block a chatty server).
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self._log = open(log_path, "ab")
        try:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                self.command, cwd=cwd, env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            self._log.close()
            raise ServerFailed(f"{name}: cannot start {self.command[0]!r}: {exc}") from exc

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, url: str, timeout_s: float = 120.0) -> None:
        """Poll ``url`` until it answers 200; ``ServerFailed`` if the process exits or time runs
        out (a safety net for a slow, loaded machine, not a measurement)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServerFailed(f"{self.name} exited with {code} before it was ready:\n"
                                   f"{self.log_tail()}")
            if http_request(url, timeout_s=2.0).status == 200:
                return
            time.sleep(0.2)
        raise ServerFailed(f"{self.name} was not ready at {url} after {timeout_s:g} s:\n"
                           f"{self.log_tail()}")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM to the process group, SIGKILL to whatever is left after ``timeout_s``."""
        process, self.process = self.process, None
        if process is not None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process.pid, signal.SIGKILL)  # children that outlived their parent
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) run so far by every live process in group ``pgid``: a
    ``ServerProcess``'s whole tree (HAProxy under our controller, nginx's workers), each with
    all its threads, ended ones included (``/proc/PID/stat``; in clock ticks, 10 ms here)."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # after the command's name: state, ppid, pgrp, ...
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def raise_keyboard_interrupt_on_sigterm() -> None:
    """Let SIGTERM unwind the script like Ctrl-C does, so every ``finally`` stops its servers."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
