"""Run a simulated fleet as a child process (``python -m mltoolkit.sim fleet``) and drive its
control port; for benchmarks and notebooks, where the fleet should not share the caller's loop."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

from mltoolkit.errors import MltoolkitError
from mltoolkit.sim.fleet_spec import FleetSpec


class FleetProcess:
    """``with FleetProcess(spec) as fleet: fleet.urls["r00"]`` -- started on entry (or ``start()``),
    stopped with SIGTERM on exit (or ``stop()``), killed if it does not exit in time."""

    def __init__(self, spec: FleetSpec, *, start_timeout_s: float = 60.0) -> None:
        if not isinstance(spec, FleetSpec):
            raise TypeError(f"spec: expected a FleetSpec, got {type(spec).__name__}")
        self.spec = spec
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}
        self.control_url = ""
        self._stderr: Any = None

    def __enter__(self) -> FleetProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
            json.dump(self.spec.to_dict(), config)
        self._stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mltoolkit.sim", "fleet", "--config", config.name, "--json"],
                stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
            )
            ready = self._read_ready_line()
        except BaseException:
            self.stop()
            raise
        finally:
            os.unlink(config.name)
        self.control_url = ready["control"]
        self.urls = {r["name"]: r["url"] for r in ready["replicas"]}

    def _read_ready_line(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if readable:
                line = self.process.stdout.readline()
                if line:
                    return json.loads(line)
            if self.process.poll() is not None:
                raise MltoolkitError(f"the fleet exited with {self.process.returncode}: {self._error_text()}")
        raise MltoolkitError(f"the fleet did not start within {self.start_timeout_s:g} s")

    def _error_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:]

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.control_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise MltoolkitError(f"fleet control {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def stats(self) -> list[dict[str, Any]]:
        """Each replica's counters (see ``mltoolkit.sim.fleet``)."""
        return self._call("/replicas")["replicas"]

    def slow_down(self, name: str, factor: float = 10.0) -> None:
        self._call(f"/replicas/{name}/slowdown", {"factor": factor})

    def kill(self, name: str, mode: str = "close") -> None:
        self._call(f"/replicas/{name}/die", {"mode": mode})

    def wait_idle(self, timeout_s: float = 120.0) -> bool:
        """Wait until no replica has requests waiting or in service; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(r["in_flight"] == 0 or r["dead"] for r in self.stats()):
                return True
            time.sleep(0.1)
        return False

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
