"""The model server's configuration, from the command line with environment fallbacks.

Command line (the replica contract in docs/architecture.md)::

    python -m mltoolkit.serving --model-path PATH --model-name NAME --port PORT --replica-id ID
        [--host 127.0.0.1] [--max-request-bytes N] [--no-batching] [--max-batch-size N]
        [--max-wait-ms F] [--slowdown FACTOR] [--model-sha256 HEX] [--library-versions LIST]
        [--idle-timeout S] [--body-timeout S] [--max-connections N]

Each option falls back to an environment variable (for the container image): ``--model-path``
``MLTOOLKIT_MODEL_PATH``, ``--model-name`` ``MLTOOLKIT_MODEL_NAME``, ``--port`` ``PORT``,
``--replica-id`` ``MLTOOLKIT_REPLICA_ID`` (default: the hostname), ``--host`` ``MLTOOLKIT_HOST``,
``--max-request-bytes`` ``MLTOOLKIT_MAX_REQUEST_BYTES``, ``--no-batching`` ``MLTOOLKIT_BATCHING=0``,
``--max-batch-size`` ``MLTOOLKIT_MAX_BATCH_SIZE``, ``--max-wait-ms`` ``MLTOOLKIT_MAX_WAIT_MS``,
``--slowdown`` ``MLTOOLKIT_SLOWDOWN`` (an emulated slower replica: see ``ServerConfig``),
``--model-sha256`` ``MLTOOLKIT_MODEL_SHA256``, ``--library-versions`` ``MLTOOLKIT_LIBRARY_VERSIONS``
(``numpy=2.1.0,scikit-learn=1.5.2``: the versions that pickled the model; see ``ServerConfig``),
``--idle-timeout`` ``MLTOOLKIT_IDLE_TIMEOUT``, ``--body-timeout`` ``MLTOOLKIT_BODY_TIMEOUT``,
``--max-connections`` ``MLTOOLKIT_MAX_CONNECTIONS`` (slow and idle clients: see ``ServerConfig``).
A bad value raises ``SpecError`` naming the option (or the variable it came from).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mltoolkit.errors import SpecError
from mltoolkit.spec import BatchingSpec
from mltoolkit.spec.libraries import check_library_versions_field, parse_versions

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_REQUEST_BYTES = 8 * 2**20
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REPLICA_ID = re.compile(r"^[\x21-\x7e]{1,253}$")  # printable ASCII, no spaces: a header value
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# option name, environment variable, ServerConfig field
OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--model-path", "MLTOOLKIT_MODEL_PATH", "model_path"),
    ("--model-name", "MLTOOLKIT_MODEL_NAME", "model_name"),
    ("--port", "PORT", "port"),
    ("--replica-id", "MLTOOLKIT_REPLICA_ID", "replica_id"),
    ("--host", "MLTOOLKIT_HOST", "host"),
    ("--max-request-bytes", "MLTOOLKIT_MAX_REQUEST_BYTES", "max_request_bytes"),
    ("--max-batch-size", "MLTOOLKIT_MAX_BATCH_SIZE", "max_batch_size"),
    ("--max-wait-ms", "MLTOOLKIT_MAX_WAIT_MS", "max_wait_ms"),
    ("--slowdown", "MLTOOLKIT_SLOWDOWN", "slowdown"),
    ("--model-sha256", "MLTOOLKIT_MODEL_SHA256", "model_sha256"),
    ("--library-versions", "MLTOOLKIT_LIBRARY_VERSIONS", "library_versions"),
    ("--idle-timeout", "MLTOOLKIT_IDLE_TIMEOUT", "idle_timeout_s"),
    ("--body-timeout", "MLTOOLKIT_BODY_TIMEOUT", "body_timeout_s"),
    ("--max-connections", "MLTOOLKIT_MAX_CONNECTIONS", "max_connections"),
)
MAX_SLOWDOWN = 1000.0
_HELP = {
    "slowdown": "emulate a FACTOR times slower replica: after each predict call, stay busy "
    "(sleeping) for FACTOR-1 times its duration; default 1 = full speed ",
    "model_sha256": "refuse to load a model file whose SHA-256 is not this ",
    "library_versions": "refuse to start unless these packages are installed at these "
    "versions, e.g. numpy=2.1.0,scikit-learn=1.5.2 ",
    "idle_timeout_s": "close a connection that sends no complete request headers for S seconds "
    "(from its opening or its last answer); default 15 ",
    "body_timeout_s": "answer 408 and close when a request body takes more than S seconds to "
    "arrive; default 30 ",
    "max_connections": "refuse connections beyond N open ones with a 503; default 1000 ",
}
_METAVARS = {
    "slowdown": "FACTOR",
    "model_sha256": "HEX",
    "library_versions": "LIST",
    "idle_timeout_s": "S",
    "body_timeout_s": "S",
    "max_connections": "N",
}
_FIELD_OPTION = {
    **{f"ServerConfig.{name}": option for option, _, name in OPTIONS},
    "BatchingSpec.max_batch_size": "--max-batch-size",
    "BatchingSpec.max_wait_ms": "--max-wait-ms",
    "BatchingSpec.enabled": "--no-batching",
}


@dataclass(frozen=True)
class ServerConfig:
    """Everything a replica needs; validated on construction (``SpecError`` names the field).

    ``slowdown`` (>= 1) *emulates* a slower replica for demos and tests of balancing: after each
    predict call that took t seconds the replica stays busy for (slowdown - 1) * t more, in a
    blocking sleep where predict runs (see mltoolkit/serving/batching.py). 1 is full speed.

    ``model_sha256`` (64 hex digits): the model file must have this content hash, checked on the
    bytes that are then unpickled. ``library_versions``: ``{distribution: version}`` that must be
    installed (the environment that pickled the model); empty checks nothing.

    Slow and idle clients: a connection that has not sent complete request headers
    ``idle_timeout_s`` after it opened or after its last answer is closed (this bounds silent
    connections and half-sent headers alike); a body that has not fully arrived after
    ``body_timeout_s`` is answered 408 and its connection closed; beyond ``max_connections``
    open connections, a new one is answered 503 and closed (the server also raises its soft
    open-file limit to the hard one at start, and keeps the cap below it).
    """

    model_path: str
    model_name: str
    port: int = DEFAULT_PORT
    replica_id: str = field(default_factory=socket.gethostname)
    host: str = DEFAULT_HOST
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    batching: BatchingSpec = field(default_factory=BatchingSpec)
    shutdown_timeout_s: float = 25.0
    slowdown: float = 1.0
    model_sha256: str | None = None
    library_versions: dict[str, str] = field(default_factory=dict)
    idle_timeout_s: float = 15.0
    body_timeout_s: float = 30.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.model_path, str) or not Path(self.model_path).is_file():
            raise SpecError("ServerConfig.model_path", self.model_path, "an existing model file")
        if not isinstance(self.model_name, str) or not _MODEL_NAME.match(self.model_name):
            raise SpecError(
                "ServerConfig.model_name",
                self.model_name,
                "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        _check_int("ServerConfig.port", self.port, 0, 65535)
        if not isinstance(self.replica_id, str) or not _REPLICA_ID.match(self.replica_id):
            raise SpecError(
                "ServerConfig.replica_id", self.replica_id, "1-253 printable characters, no spaces"
            )
        if not _is_host(self.host):
            raise SpecError(
                "ServerConfig.host",
                self.host,
                "an IP address such as 127.0.0.1 or 0.0.0.0, or a host name",
            )
        _check_int("ServerConfig.max_request_bytes", self.max_request_bytes, 1024, 2**30)
        if not isinstance(self.batching, BatchingSpec):
            raise SpecError("ServerConfig.batching", self.batching, "a BatchingSpec")
        if (
            isinstance(self.shutdown_timeout_s, bool)
            or not isinstance(self.shutdown_timeout_s, (int, float))
            or not 0 < self.shutdown_timeout_s <= 3600
        ):
            raise SpecError(
                "ServerConfig.shutdown_timeout_s",
                self.shutdown_timeout_s,
                "a number of seconds in (0, 3600]",
            )
        check_slowdown("ServerConfig.slowdown", self.slowdown)
        if self.model_sha256 is not None and (
            not isinstance(self.model_sha256, str)
            or not re.fullmatch(r"[0-9a-f]{64}", self.model_sha256)
        ):
            raise SpecError(
                "ServerConfig.model_sha256", self.model_sha256, "64 lowercase hex digits (SHA-256)"
            )
        check_library_versions_field("ServerConfig.library_versions", self.library_versions)
        for name in ("idle_timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= value <= 3600:
                raise SpecError(f"ServerConfig.{name}", value, "a number of seconds from 0.1 to 3600")
        _check_int("ServerConfig.max_connections", self.max_connections, 1, 1_000_000)


def check_slowdown(name: str, value: Any) -> float:
    """``value`` as a float if it is a slowdown factor from 1 to ``MAX_SLOWDOWN``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 1 <= value <= MAX_SLOWDOWN  # also rejects NaN
    ):
        raise SpecError(
            name, value, f"a number from 1 (full speed) to {MAX_SLOWDOWN:g} (times slower)"
        )
    return float(value)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(name, value, f"a whole number from {low} to {high}")


def _is_host(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", value) is not None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mltoolkit.serving",
        description="Serve a joblib-saved model over HTTP (POST /predict and Open Inference "
        "Protocol V2). Each option falls back to the environment variable named in its help.",
    )
    for option, variable, name in OPTIONS:
        metavar = _METAVARS.get(name, name.split("_")[-1].upper())
        note = _HELP.get(name, "")
        parser.add_argument(option, dest=name, metavar=metavar, help=f"{note}(env {variable})")
    parser.add_argument(
        "--no-batching",
        dest="no_batching",
        action="store_true",
        default=None,
        help="predict each request alone (env MLTOOLKIT_BATCHING=0)",
    )
    return parser


def config_from_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Parse the command line (falling back to ``environ``) into a validated ``ServerConfig``.

    Raises ``SpecError`` whose ``field`` is the option (``--port``) or the environment variable
    (``PORT``) the bad value came from. argparse itself exits 2 on unknown options.
    """
    env = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(argv))
    raw: dict[str, tuple[str, str]] = {}  # field -> (where it came from, text)
    for option, variable, name in OPTIONS:
        if args[name] is not None:
            raw[name] = (option, args[name])
        elif env.get(variable):
            raw[name] = (variable, env[variable])
    for option, variable, name in OPTIONS[:2]:  # --model-path and --model-name are required
        if name not in raw:
            raise SpecError(option, None, f"a value (or the environment variable {variable})")

    values: dict[str, Any] = {name: raw[name][1] for name in ("model_path", "model_name")}
    for name in ("replica_id", "host", "model_sha256"):
        if name in raw:
            values[name] = raw[name][1]
    if "library_versions" in raw:
        values["library_versions"] = parse_versions(raw["library_versions"][1], raw["library_versions"][0])
    for name in ("port", "max_request_bytes", "max_batch_size", "max_connections"):
        if name in raw:
            values[name] = _parse_int(*raw[name])
    batching: dict[str, Any] = {}
    if "max_batch_size" in raw:
        batching["max_batch_size"] = values.pop("max_batch_size")
    if "max_wait_ms" in raw:
        batching["max_wait_ms"] = _parse_float(*raw["max_wait_ms"])
    for name in ("slowdown", "idle_timeout_s", "body_timeout_s"):
        if name in raw:
            values[name] = _parse_float(*raw[name])
    if args["no_batching"]:
        batching["enabled"] = False
    elif env.get("MLTOOLKIT_BATCHING"):
        text = env["MLTOOLKIT_BATCHING"].strip().lower()
        if text not in _TRUE | _FALSE:
            raise SpecError("MLTOOLKIT_BATCHING", env["MLTOOLKIT_BATCHING"], "1 or 0 (true/false)")
        batching["enabled"] = text in _TRUE

    try:
        return ServerConfig(batching=BatchingSpec(**batching), **values)
    except SpecError as exc:
        option = _FIELD_OPTION.get(exc.field, exc.field)
        source = next((raw[n][0] for o, _, n in OPTIONS if o == option and n in raw), option)
        raise SpecError(source, exc.value, exc.allowed) from None


def _parse_int(source: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SpecError(source, text, "a whole number") from None


def _parse_float(source: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise SpecError(source, text, "a number") from None
    if value != value:  # NaN
        raise SpecError(source, text, "a number")
    return value
