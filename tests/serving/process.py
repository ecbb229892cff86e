"""Starting the real ``python -m mltoolkit.serving`` as a subprocess, and always stopping it."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

STARTUP_TIMEOUT_S = 60.0  # a safety net for a loaded machine, not a performance assertion
_LISTENING = re.compile(r"on (http://[\d.]+:\d+) as replica")


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    url: str
    started_line: str = ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Signal the server and wait for it; kill it if it does not exit. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mltoolkit.serving", *args]


def start_server(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start the server with ``args`` (``--port 0`` picks a free loopback port) and wait until
    ``/v2/health/ready`` answers 200. The caller must ``stop()`` it (use a fixture)."""
    process = subprocess.Popen(
        server_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        url, line = _read_url(process)
        _wait_ready(url, process)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return ServerProcess(process=process, url=url, started_line=line)


def _read_url(process: subprocess.Popen[str]) -> tuple[str, str]:
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            seen.append(line)
            match = _LISTENING.search(line)
            if match:
                return match.group(1), line
        elif process.poll() is not None:
            break
    raise RuntimeError(f"server did not start (exit {process.poll()}): {''.join(seen)}")


def _wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} never became ready")
