"""``python -m mltoolkit.serving``: validate the options, load the model, then serve.

``--standby``: load and warm everything (imports, the verified model), then wait for one line
on standard input, a JSON object ``{"port", "replica_id", "slowdown", "log_path"}``, and serve
as that replica (its output then goes to ``log_path``); end of input exits 0. A supervisor keeps
one standby per deployment, so restarting a replica skips the seconds of importing scikit-learn
and unpickling (the model file is hashed again at activation, and refused if it changed).

Exit status: 2 for a bad option or model file, a model file whose SHA-256 is not the expected one,
or installed library versions that differ from those that pickled the model (nothing is bound;
checked on every start, restarts included); 1 if the port cannot be bound, 0 after a graceful stop
on SIGTERM/SIGINT.
"""

from __future__ import annotations

import time

_STARTED = time.monotonic()  # before the heavy imports below

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from typing import Mapping, Sequence  # noqa: E402

from mltoolkit.errors import SpecError  # noqa: E402
from mltoolkit.serving.config import ServerConfig, build_parser, config_from_args  # noqa: E402
from mltoolkit.serving.model import ModelLoadError, load_model  # noqa: E402
from mltoolkit.serving.server import run  # noqa: E402
from mltoolkit.spec.libraries import LibraryVersionError, check_library_versions  # noqa: E402


def seconds_since_process_start() -> float:
    """How long this process has run (Linux: from /proc; elsewhere since this module loaded),
    so the start-up line counts the interpreter's own start and the package's imports."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _STARTED


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    standby = bool(build_parser().parse_known_args(argv)[0].standby)
    try:
        config = config_from_args(argv, environ)
        check_library_versions(config.library_versions, f"model {config.model_name!r}")
        imported = seconds_since_process_start()
        loading = time.monotonic()
        model = load_model(config.model_path, config.model_name, config.model_sha256)
        print(
            f"mltoolkit.serving: start-up: process start and imports {imported:.2f} s, model "
            f"load and warm-up {time.monotonic() - loading:.2f} s",
            flush=True,
        )
        if standby:
            activated = _wait_for_activation(config)
            if activated is None:
                return 0
            config = activated
    except SpecError as exc:
        build_parser().error(str(exc))  # prints usage and the message, exits 2
    except LibraryVersionError as exc:
        build_parser().error(f"--library-versions: {exc}")
    except ModelLoadError as exc:
        build_parser().error(f"--model-path: {exc}")
    return run(config, model)


def _wait_for_activation(config: ServerConfig) -> ServerConfig | None:
    """Block until the activation line; the config of the replica to become (None at EOF)."""
    from mltoolkit.serving.server import freeze_startup_objects

    freeze_startup_objects()  # now, not after the take-over
    print("mltoolkit.serving: standby: ready to take over a replica", flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        return None
    order = json.loads(line)
    log_path = order.get("log_path")
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    waited = time.monotonic()
    if config.model_sha256 is not None:
        from mltoolkit.spec.deployment import file_sha256

        found = file_sha256(config.model_path)
        if found != config.model_sha256:
            raise ModelLoadError(
                f"{config.model_path!r} has SHA-256 {found}, not the {config.model_sha256} "
                "recorded when the model was saved: the file changed since"
            )
    print(
        f"mltoolkit.serving: standby activated as replica {order['replica_id']!r} "
        f"(model checked again in {time.monotonic() - waited:.3f} s)",
        flush=True,
    )
    return replace(
        config,
        port=int(order["port"]),
        replica_id=str(order["replica_id"]),
        slowdown=float(order.get("slowdown", 1.0)),
        service_ms=float(order.get("service_ms", config.service_ms)),
    )


if __name__ == "__main__":
    sys.exit(main())
