"""``python -m mltoolkit.balancer``: parse the command line, serve until SIGTERM or SIGINT.

Bad arguments exit with status 2 and a message naming the option; a port that cannot be bound
exits with status 1. Once listening, one line goes to stdout:
``mltoolkit balancer listening on http://HOST:PORT`` (with the real port when ``--port 0``).
SIGTERM stops accepting connections, lets requests in progress finish, and exits 0.
At start the soft limit on open files is raised to the hard limit, and the event loop is uvloop's
when it is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Callable, Sequence

from mltoolkit.balancer.config import BalancerConfig, ReplicaTarget, parse_replica
from mltoolkit.balancer.policies import policy_names
from mltoolkit.balancer.server import raise_open_file_limit, start_server
from mltoolkit.errors import SpecError

# BalancerConfig field → the option that sets it, so config errors name what the user typed.
_OPTION_OF_FIELD = {
    "BalancerConfig.replicas": "--replica",
    "BalancerConfig.policy": "--policy",
    "BalancerConfig.host": "--host",
    "BalancerConfig.port": "--port",
    "BalancerConfig.health_interval_s": "--health-interval",
    "BalancerConfig.health_timeout_s": "--health-timeout",
    "BalancerConfig.unhealthy_after": "--unhealthy-after",
    "BalancerConfig.retries": "--retries",
    "BalancerConfig.request_timeout_s": "--timeout",
    "BalancerConfig.max_request_bytes": "--max-request-bytes",
    "BalancerConfig.max_connections_per_replica": "--max-connections-per-replica",
    "BalancerConfig.client_header_timeout_s": "--client-header-timeout",
    "BalancerConfig.client_body_timeout_s": "--client-body-timeout",
    "BalancerConfig.client_idle_timeout_s": "--client-idle-timeout",
    "BalancerConfig.max_client_connections": "--max-client-connections",
    "BalancerConfig.hedge_min_s": "--hedge-min",
}


def _replica(text: str) -> ReplicaTarget:
    try:
        return parse_replica(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _weight(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=WEIGHT, such as digits-0=2 (NAME is a --replica name)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    defaults = BalancerConfig(replicas=(ReplicaTarget("x", "http://127.0.0.1:1"),))
    parser = argparse.ArgumentParser(
        prog="python -m mltoolkit.balancer",
        description="HTTP load balancer in front of model-server replicas.",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    parser.add_argument(
        "--policy", default=defaults.policy, help=f"one of {policy_names()} (default %(default)s)"
    )
    parser.add_argument(
        "--replica",
        type=_replica,
        action="append",
        required=True,
        metavar="NAME=URL[@NODE]",
        help="a replica to balance over; repeat for each",
    )
    parser.add_argument(
        "--weight",
        type=_weight,
        action="append",
        default=[],
        metavar="NAME=WEIGHT",
        help="relative weight of a replica (default 1); repeat for each",
    )
    parser.add_argument("--health-interval", type=float, default=defaults.health_interval_s,
                        help="seconds between readiness probes of each replica (default %(default)s)")
    parser.add_argument("--health-timeout", type=float, default=defaults.health_timeout_s,
                        help="seconds a readiness probe may take (default %(default)s)")
    parser.add_argument("--unhealthy-after", type=int, default=defaults.unhealthy_after,
                        help="failed probes in a row that take a replica out (default %(default)s)")
    parser.add_argument("--retries", type=int, default=defaults.retries,
                        help="other replicas to try after a connection failure (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=defaults.request_timeout_s,
                        help="seconds a request may take in all (default %(default)s)")
    parser.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes,
                        help="largest request body accepted (default %(default)s)")
    parser.add_argument("--max-connections-per-replica", type=int,
                        default=defaults.max_connections_per_replica,
                        help="size of each replica's connection pool (default %(default)s)")  # fmt: skip
    parser.add_argument("--client-header-timeout", type=float, default=defaults.client_header_timeout_s,
                        help="seconds a client may take to send a request's headers (default %(default)s)")
    parser.add_argument("--client-body-timeout", type=float, default=defaults.client_body_timeout_s,
                        help="seconds a client may take to send a request's body (default %(default)s)")
    parser.add_argument("--client-idle-timeout", type=float, default=defaults.client_idle_timeout_s,
                        help="seconds an idle keep-alive client connection stays open (default %(default)s)")
    parser.add_argument("--max-client-connections", type=int, default=defaults.max_client_connections,
                        help="client connections open at once; more are refused with a 503 "
                             "(default %(default)s)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="bind with SO_REUSEPORT, so several balancer processes share the port")
    parser.add_argument("--hedge", action="store_true",
                        help="send a POST/GET stuck on a replica to another one too, after 3x the "
                             "slowest other replica's latency average")
    parser.add_argument("--hedge-min", type=float, default=defaults.hedge_min_s,
                        help="seconds a request waits at least before it is hedged (default %(default)s)")
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> BalancerConfig:
    """The config the command line describes; exits with status 2 naming the bad option."""
    parser = build_parser()
    args = parser.parse_args(argv)
    replicas: list[ReplicaTarget] = args.replica
    names = [r.name for r in replicas]
    for name, weight in args.weight:
        if name not in names:
            parser.error(f"argument --weight: {name!r} is not a --replica name; those are {names}")
    weights = dict(args.weight)
    try:
        replicas = [
            ReplicaTarget(r.name, r.url, r.node, weights.get(r.name, 1.0)) for r in replicas
        ]
    except SpecError as exc:
        parser.error(f"argument --weight: {exc}")
    try:
        return BalancerConfig(
            replicas=tuple(replicas),
            policy=args.policy,
            host=args.host,
            port=args.port,
            health_interval_s=args.health_interval,
            health_timeout_s=args.health_timeout,
            unhealthy_after=args.unhealthy_after,
            retries=args.retries,
            request_timeout_s=args.timeout,
            max_request_bytes=args.max_request_bytes,
            max_connections_per_replica=args.max_connections_per_replica,
            client_header_timeout_s=args.client_header_timeout,
            client_body_timeout_s=args.client_body_timeout,
            client_idle_timeout_s=args.client_idle_timeout,
            max_client_connections=args.max_client_connections,
            reuse_port=args.reuse_port,
            hedge=args.hedge,
            hedge_min_s=args.hedge_min,
        )
    except SpecError as exc:
        option = _OPTION_OF_FIELD.get(exc.field, exc.field)
        parser.error(f"argument {option}: {exc.value!r} is not allowed; expected {exc.allowed}")


async def serve(
    config: BalancerConfig,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Run the balancer until ``stop`` is set (by default: until SIGTERM or SIGINT)."""
    loop = asyncio.get_running_loop()
    handle_signals = stop is None
    stop = stop or asyncio.Event()
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    server = await start_server(config, on_listening=on_listening)
    try:
        await stop.wait()
    finally:
        await server.close()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (about twice as fast here), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)

    def announce(url: str) -> None:
        print(
            f"mltoolkit balancer listening on {url} "
            f"(policy {config.policy}, {len(config.replicas)} replicas)",
            flush=True,
        )

    raise_open_file_limit()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(config, on_listening=announce))
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port} (--host/--port): {exc}", file=sys.stderr)
        return 1
    return 0
