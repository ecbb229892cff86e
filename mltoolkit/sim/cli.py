"""``python -m mltoolkit.sim fleet ...``: start a simulated fleet and print its ports.

Examples::

    python -m mltoolkit.sim fleet --replicas 16 --slow-fraction 0.25 --slow-factor 3 \\
        --costs pareto --mean-ms 100 --shape 2.5
    python -m mltoolkit.sim fleet --config fleet.json --json
    python -m mltoolkit.sim fleet --replicas 4 --slowdown r01@10x10 --die r02@20:close

Prints one line per replica (``NAME URL slots=K speed=S``) and the control URL, or with ``--json``
one JSON object ``{"control", "capacity_rps", "replicas": [{"name", "url", "slots", "speed"}]}``,
then serves until SIGTERM or SIGINT (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import signal
import sys
from pathlib import Path
from typing import Sequence

from mltoolkit.errors import SpecError
from mltoolkit.sim.costs import COST_KINDS, CostDistribution
from mltoolkit.sim.fleet import Fleet
from mltoolkit.sim.fleet_spec import DEATH_MODES, FleetSpec, uneven_fleet

_SLOWDOWN = re.compile(r"^(?P<name>[^@]+)@(?P<at>[0-9.]+)(?:x(?P<factor>[0-9.]+))?$")
_DIE = re.compile(r"^(?P<name>[^@]+)@(?P<at>[0-9.]+)(?::(?P<mode>\w+))?$")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mltoolkit.sim")
    commands = parser.add_subparsers(dest="command", required=True)
    fleet = commands.add_parser("fleet", help="serve simulated replicas until SIGTERM/SIGINT")
    fleet.add_argument("--config", help="a FleetSpec as JSON (FleetSpec.to_dict()); overrides the shape options")
    fleet.add_argument("--replicas", type=int, default=16)
    fleet.add_argument("--slots", type=int, default=1, help="concurrent requests per replica")
    fleet.add_argument("--slow-fraction", type=float, default=0.25, help="share of replicas that are slower")
    fleet.add_argument("--slow-factor", type=float, default=3.0, help="how many times slower they are")
    fleet.add_argument("--costs", default="exponential", help=f"cost distribution: one of {list(COST_KINDS)}")
    fleet.add_argument("--mean-ms", type=float, default=50.0, help="mean request cost on a speed-1 replica")
    fleet.add_argument("--shape", type=float, default=None, help="lognormal sigma or Pareto alpha")
    fleet.add_argument("--host", default="127.0.0.1")
    fleet.add_argument("--base-port", type=int, default=0, help="0: ports chosen by the OS")
    fleet.add_argument("--seed", type=int, default=0)
    fleet.add_argument("--slowdown", action="append", default=[], metavar="NAME@T[xF]",
                       help="replica NAME serves F (default 10) times slower from T seconds after start")
    fleet.add_argument("--die", action="append", default=[], metavar="NAME@T[:MODE]",
                       help=f"replica NAME dies T seconds after start; MODE one of {list(DEATH_MODES)}")
    fleet.add_argument("--json", action="store_true", help="print the ready line as one JSON object")
    return parser


def spec_from_args(args: argparse.Namespace) -> FleetSpec:
    """The fleet the arguments describe; ``SpecError`` names the first bad value."""
    if args.config:
        try:
            data = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError("--config", args.config, f"a readable JSON file ({exc})") from None
        spec = FleetSpec.from_dict(data)
    else:
        costs = CostDistribution(kind=args.costs, mean_s=args.mean_ms / 1000.0, shape=args.shape)
        spec = uneven_fleet(
            args.replicas, slots=args.slots, slow_fraction=args.slow_fraction,
            slow_factor=args.slow_factor, costs=costs, seed=args.seed,
        )
        spec = dataclasses.replace(spec, host=args.host, base_port=args.base_port)
    replicas = {r.name: r for r in spec.replicas}
    for text in args.slowdown:
        match = _SLOWDOWN.match(text)
        if not match or match["name"] not in replicas:
            raise SpecError("--slowdown", text, f"NAME@SECONDS[xFACTOR] with NAME one of {sorted(replicas)}")
        factor = float(match["factor"]) if match["factor"] else 10.0
        replicas[match["name"]] = dataclasses.replace(
            replicas[match["name"]], slow_at_s=float(match["at"]), slow_factor=factor
        )
    for text in args.die:
        match = _DIE.match(text)
        if not match or match["name"] not in replicas:
            raise SpecError("--die", text, f"NAME@SECONDS[:MODE] with NAME one of {sorted(replicas)}")
        replicas[match["name"]] = dataclasses.replace(
            replicas[match["name"]], die_at_s=float(match["at"]), death_mode=match["mode"] or "close"
        )
    return dataclasses.replace(spec, replicas=tuple(replicas.values()))


def ready_message(fleet: Fleet) -> dict[str, object]:
    return {
        "control": fleet.control_url,
        "capacity_rps": fleet.spec.capacity_rps(),
        "replicas": [
            {"name": r.name, "url": fleet.urls[r.name], "slots": r.slots, "speed": r.speed}
            for r in fleet.spec.replicas
        ],
    }


async def serve(spec: FleetSpec, as_json: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Fleet(spec) as fleet:
        message = ready_message(fleet)
        if as_json:
            print(json.dumps(message), flush=True)
        else:
            for r in message["replicas"]:  # type: ignore[union-attr]
                print(f"{r['name']} {r['url']} slots={r['slots']} speed={r['speed']:g}")
            print(f"control {fleet.control_url}")
            print(
                f"ready: {len(spec.replicas)} replicas, capacity {spec.capacity_rps():.1f} req/s "
                f"at mean cost {spec.costs.mean_s * 1000:g} ms",
                flush=True,
            )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(spec, args.json))
    except OSError as exc:  # e.g. a port already in use
        print(f"error: cannot start the fleet: {exc}", file=sys.stderr)
        return 1
    return 0
