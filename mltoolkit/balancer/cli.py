"""``python -m mltoolkit.balancer``: parse the command line, serve until SIGTERM or SIGINT.

The replicas are a static ``--replica`` list, or found through Kubernetes with
``--discover-service SVC`` (the Service's ready EndpointSlice endpoints join and leave while the
balancer runs; see ``mltoolkit.balancer.discovery``), or both; one of the two is required. With
discovery the balancer may start with no replica: requests get a 503 "no replica yet" until one
joins.

Bad arguments exit with status 2 and a message naming the option; a port that cannot be bound,
or a Kubernetes API that refuses the service account, exits with status 1. Once listening (and,
with discovery, once the first list of endpoints is applied), one line goes to stdout:
``mltoolkit balancer listening on http://HOST:PORT`` (with the real port when ``--port 0``).
SIGTERM stops accepting connections, lets requests in progress finish, and exits 0.
At start the soft limit on open files is raised to the hard limit, and the event loop is uvloop's
when it is installed.

``--data-plane haproxy`` (the default) has an HAProxy child forward the requests
(``mltoolkit.balancer.haproxy_plane``; without the ``haproxy`` program: exit 2 naming how to
install it); ``--data-plane python`` forwards them in this process (``mltoolkit.balancer.server``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
from typing import Any, Callable, Coroutine, Mapping, Sequence

from mltoolkit.balancer import discovery
from mltoolkit.balancer.config import DATA_PLANES, BalancerConfig, ReplicaTarget, parse_replica
from mltoolkit.balancer.haproxy_controller import INSTALL_HINT, HAProxyError
from mltoolkit.balancer.haproxy_plane import AdminPortError, HAProxyEngine, HAProxyPlane, start_haproxy_plane
from mltoolkit.balancer.policies import policy_names
from mltoolkit.balancer.server import BalancerServer, ClientConnection, raise_open_file_limit, start_server
from mltoolkit.errors import SpecError
from mltoolkit.startup import freeze_startup_objects

logger = logging.getLogger("mltoolkit.balancer.cli")

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
    "BalancerConfig.admin_port": "--admin-port",
    "BalancerConfig.data_plane": "--data-plane",
    "BalancerConfig.latency_sample": "--latency-sample",
    "BalancerConfig.hedge": "--hedge",
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
        default=[],
        metavar="NAME=URL[@NODE]",
        help="a replica to balance over; repeat for each (or --discover-service, or both)",
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
    parser.add_argument("--admin-port", type=int, default=None,
                        help="also listen on this port of this process alone (same routes), to read "
                             "its /-/health and /-/metrics when several processes share --port")
    parser.add_argument("--data-plane", choices=DATA_PLANES, default=defaults.data_plane,
                        help="haproxy: HAProxy forwards the requests, this process sets its weights and "
                             "membership (needs the haproxy program); python: this process forwards "
                             "them (the only one that hedges) (default %(default)s)")
    parser.add_argument("--latency-sample", type=int, default=defaults.latency_sample,
                        help="haproxy data plane: one request in N is timed for /-/metrics' latency "
                             "histograms (default %(default)s)")
    discovery.add_discovery_options(parser)
    return parser


Discovery = tuple[discovery.KubeAPIConfig, discovery.DiscoveryConfig]


def config_from_args(argv: Sequence[str] | None = None) -> BalancerConfig:
    """The config the command line describes; exits with status 2 naming the bad option."""
    return command_from_args(argv)[0]


def command_from_args(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[BalancerConfig, Discovery | None]:
    """The balancer's config and, with ``--discover-service``, the Kubernetes API access and
    discovery settings; exits with status 2 naming the bad option."""
    parser = build_parser()
    args = parser.parse_args(argv)
    replicas: list[ReplicaTarget] = args.replica
    if not replicas and not args.discover_service:
        parser.error(
            "the replicas are missing: give --replica NAME=URL[@NODE] (repeat for each) "
            "or --discover-service SERVICE (in a Kubernetes pod)"
        )
    try:
        found = discovery.discovery_from_args(
            args,
            environ=os.environ if environ is None else environ,
            service_account_dir=discovery.SERVICE_ACCOUNT_DIR,  # read now: tests point it elsewhere
        )
    except SpecError as exc:
        option = discovery.OPTION_OF_FIELD.get(exc.field, exc.field)
        parser.error(f"argument {option}: {exc.value!r} is not allowed; expected {exc.allowed}")
    except discovery.DiscoveryError as exc:
        parser.error(str(exc))
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
        config = BalancerConfig(
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
            admin_port=args.admin_port,
            discovered=found is not None,
            data_plane=args.data_plane,
            latency_sample=args.latency_sample,
        )
    except SpecError as exc:
        option = _OPTION_OF_FIELD.get(exc.field, exc.field)
        parser.error(f"argument {option}: {exc.value!r} is not allowed; expected {exc.allowed}")
    return config, found


async def serve(
    config: BalancerConfig,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[str], None] | None = None,
    found: Discovery | None = None,
) -> None:
    """Run the balancer until ``stop`` is set (by default: until SIGTERM or SIGINT).

    With ``found`` (API access, discovery settings) the balancer follows the Service's
    EndpointSlices: the first list is applied before ``on_listening`` is called, and the
    follower stops before the server closes (requests in flight still finish).
    """
    loop = asyncio.get_running_loop()
    handle_signals = stop is None
    stop = stop or asyncio.Event()
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    plane: HAProxyPlane | None = None
    server: BalancerServer | None = None
    if config.data_plane == "haproxy":
        plane = await start_haproxy_plane(config)
        url, engine = plane.url, HAProxyEngine(plane)
    else:
        server = await start_server(config)
        url, engine = server.url, server.balancer
    follower: discovery.EndpointSliceFollower | None = None
    replicas = discovery.EngineReplicaSet(engine, config.replicas)
    admin: asyncio.AbstractServer | None = None
    try:
        if config.admin_port is not None and server is not None:
            admin = await _listen_admin(server, config)
        if found is not None:
            api, settings = found
            follower = discovery.EndpointSliceFollower(api, settings, replicas)
            if not await _first_or_stop(follower.start(), stop):
                return  # stopped before the first list arrived
        if on_listening is not None:
            on_listening(url)
        if plane is not None:
            await _until_stopped_or_exited(plane, stop)
        else:
            await stop.wait()
    finally:
        if admin is not None:
            admin.close()
        if follower is not None:
            await follower.stop()
            try:  # drains under way finish their requests in flight
                await asyncio.wait_for(replicas.settled(), config.request_timeout_s)
            except asyncio.TimeoutError:
                logger.warning("replica changes still under way at exit")
        if plane is not None:
            await plane.close()
        if server is not None:
            await server.close()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


async def _until_stopped_or_exited(plane: HAProxyPlane, stop: asyncio.Event) -> None:
    """Wait for ``stop``; an HAProxy that ends on its own is an error."""
    while not stop.is_set():
        if not plane.running:
            code = plane.process.returncode if plane.process is not None else None
            raise HAProxyError(f"haproxy exited with status {code} while serving")
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


async def _listen_admin(server: BalancerServer, config: BalancerConfig) -> asyncio.AbstractServer:
    """This process's own port (``--admin-port``): the same connections and routes as ``--port``."""
    loop = asyncio.get_running_loop()
    try:
        admin = await loop.create_server(lambda: ClientConnection(server), config.host, config.admin_port)
    except OSError as exc:
        await server.close()
        raise AdminPortError(f"cannot listen on {config.host}:{config.admin_port} (--admin-port): {exc}") from exc
    return admin


async def _first_or_stop(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first (then cancel it): whether ``work`` finished."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not working.done():
            working.cancel()
            await asyncio.gather(working, return_exceptions=True)
    if working.cancelled():
        return False
    working.result()  # raises what stopped it (a DiscoveryError: the service account is refused)
    return True


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (about twice as fast here), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: Sequence[str] | None = None) -> int:
    config, found = command_from_args(argv)
    if config.data_plane == "haproxy" and shutil.which("haproxy") is None:
        print(f"error: argument --data-plane: haproxy is not installed; install it ({INSTALL_HINT}) "
              "or give --data-plane python", file=sys.stderr)  # fmt: skip
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)

    def announce(url: str) -> None:
        replicas = f"{len(config.replicas)} replicas"
        if found is not None:
            replicas += f" + those of Service {found[1].service} in {found[0].namespace}"
        admin = f", admin on http://{config.host}:{config.admin_port}" if config.admin_port else ""
        frozen = freeze_startup_objects()  # no first full collection stalling the first requests
        logging.getLogger("mltoolkit.balancer").info("%d start-up objects frozen out of the garbage collector", frozen)
        print(f"mltoolkit balancer listening on {url} (policy {config.policy}, data plane "
              f"{config.data_plane}, {replicas}{admin})", flush=True)  # fmt: skip

    raise_open_file_limit()
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(config, on_listening=announce, found=found))
    except discovery.DiscoveryError as exc:
        print(f"error: --discover-service: {exc}", file=sys.stderr)
        return 1
    except (AdminPortError, HAProxyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port} (--host/--port): {exc}", file=sys.stderr)
        return 1
    return 0
