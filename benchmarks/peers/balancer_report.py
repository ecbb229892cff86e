"""The balancer benchmark's table (pure: results in, text out)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

from peers.proxies import DIRECT, DIRECT_FLEET, Balancer
from peers.results import Cell, Results
from peers.stats import INTERVAL_CONFIDENCE, Spread, median_interval, render_table
from peers.wrk import WrkResult

HEADERS = ("system", "conns", "req/s", "p50 ms", "p99 ms", "errors", "added p50 ms",
           "added p99 ms", "x direct req/s", "CPU us/req")  # fmt: skip


def balancer_cells(balancers: Sequence[Balancer], connections: Sequence[int]) -> list[Cell]:
    return [Cell(b.label, 1, conns) for b in balancers for conns in connections]


def balancer_table(results: Results, cells: Sequence[Cell]) -> str:
    """One line per system and connection count; 'added' latencies and the throughput ratio are
    against calling a replica directly in the same round."""
    lines = []
    for cell in cells:
        base = Cell(DIRECT.label, cell.rows, cell.connections)
        measured = cell in results.runs
        compared = measured and base in results.runs and cell.label != DIRECT.label
        lines.append((
            cell.label,
            str(cell.connections),
            results.spread(cell, "requests_per_s").format(0) if measured else "not measured",
            results.spread(cell, "p50_ms").format(2) if measured else "-",
            results.spread(cell, "p99_ms").format(2) if measured else "-",
            str(results.errors(cell)) if measured else "-",
            results.difference(cell, base, "p50_ms").format(2) if compared else "-",
            results.difference(cell, base, "p99_ms").format(2) if compared else "-",
            results.ratio(cell, base).format(2) if compared else "-",
            results.spread(cell, "cpu_us_per_request").format(1) if measured else "-",
        ))  # fmt: skip
    return render_table(HEADERS, lines)


# Issue 10's goals for our balancer (its default policy), measured side by side in one run.
THROUGHPUT_VS_NGINX = 0.5  # req/s at the most connections, at least this fraction of nginx's
ADDED_LATENCY_VS_NGINX = 2.0  # added p50 and p99 at one connection, at most this multiple
FLEET_SHARE = 0.9  # model replicas through the balancer: at least this fraction of them direct
# nginx's added latency is a few hundredths of a millisecond, within noise of zero: a floor keeps
# the ratio meaningful
ADDED_FLOOR_MS = 0.01


def _verdict(met: bool | None) -> str:
    return "no data" if met is None else ("met" if met else "NOT met")


def static_goals(results: Results, ours: Balancer, nginx: Balancer, connections: Sequence[int]) -> list[str]:
    """The goal lines against nginx with the trivial upstream: throughput at the most
    connections, added p50 and p99 at the fewest."""
    few, many = min(connections), max(connections)
    lines = []
    ratio = results.ratio(Cell(ours.label, 1, many), Cell(nginx.label, 1, many))
    met = None if ratio.count == 0 else ratio.median >= THROUGHPUT_VS_NGINX
    lines.append(f"goal: {ours.label} req/s at {many} conns >= {THROUGHPUT_VS_NGINX:.0%} of "
                 f"{nginx.label}'s: {ratio.format(2)}x -> {_verdict(met)}")  # fmt: skip
    base = Cell(DIRECT.label, 1, few)
    for metric, name in (("p50_ms", "p50"), ("p99_ms", "p99")):
        mine = results.difference(Cell(ours.label, 1, few), base, metric)
        theirs = results.difference(Cell(nginx.label, 1, few), base, metric)
        if mine.count == 0 or theirs.count == 0:
            met, text = None, "-"
        else:
            multiple = max(mine.median, 0.0) / max(theirs.median, ADDED_FLOOR_MS)
            met = multiple <= ADDED_LATENCY_VS_NGINX
            text = f"{mine.median:.3f} ms vs {theirs.median:.3f} ms = {multiple:.2f}x"
        lines.append(f"goal: {ours.label} added {name} at {few} conn <= {ADDED_LATENCY_VS_NGINX:g}x "
                     f"{nginx.label}'s: {text} -> {_verdict(met)}")  # fmt: skip
    return lines


@dataclass
class FleetTimeline:
    """The model phase's runs at the most connections, in the order measured, with a run of the
    direct fleet before every system and after the last of each round. Each system is set
    against the fleet runs just before and just after it: the shared machine drifts by 10-15 %
    within a round, and both sides of a pair drift alike."""

    runs: list[tuple[str, int, WrkResult]] = field(default_factory=list)

    def add(self, label: str, repetition: int, result: WrkResult) -> None:
        self.runs.append((label, repetition, result))

    def fleet_run(self, repetition: int) -> WrkResult | None:
        """The round's fleet run of median req/s (the lower middle one of an even count)."""
        fleet = sorted((r for label, rep, r in self.runs if label == DIRECT_FLEET.label and rep == repetition),
                       key=lambda r: r.requests_per_s)  # fmt: skip
        return fleet[(len(fleet) - 1) // 2] if fleet else None

    def ratios(self, label: str) -> list[float]:
        """``label``'s runs, each as its req/s over the mean of the fleet runs next to it in the
        same round."""
        ratios = []
        for i, (name, repetition, result) in enumerate(self.runs):
            if name != label:
                continue
            before = [r for n, rep, r in self.runs[:i] if n == DIRECT_FLEET.label and rep == repetition][-1:]
            after = [r for n, rep, r in self.runs[i + 1:] if n == DIRECT_FLEET.label and rep == repetition][:1]
            if before or after:
                ratios.append(result.requests_per_s / statistics.mean(r.requests_per_s for r in before + after))
        return ratios


def fleet_goal(timeline: FleetTimeline, ours: Balancer, connections: Sequence[int],
               peers: Sequence[Balancer] = ()) -> str:
    """The goal line with model-server replicas: the fleet through our balancer against the
    same replicas called directly, all at once, just before and just after it; the ``peers``,
    measured the same way, follow in brackets, for scale. Three decimals: the ratio often lands
    near the bar, where two would print 0.90 for a 0.897 that misses it. The verdict is the
    median's; the interval beside it says whether this run's noise could carry the median across
    the bar (when the bar lies inside it, the verdict is the draw's)."""
    ratios = timeline.ratios(ours.label)
    ratio = Spread.of(ratios)
    met = None if ratio.count == 0 else ratio.median >= FLEET_SHARE
    interval = median_interval(ratios)
    interval_text = (f"{INTERVAL_CONFIDENCE:.0%} interval of the median {interval[0]:.3f}-{interval[1]:.3f}"
                     if interval else f"too few runs for a {INTERVAL_CONFIDENCE:.0%} interval of the median")
    inside = interval is not None and interval[0] < FLEET_SHARE <= interval[1]
    line = (f"goal: model replicas through {ours.label} at {max(connections)} conns >= {FLEET_SHARE:.0%} "
            f"of the same replicas served directly (just before and after it): {ratio.format(3)}x "
            f"over {ratio.count} run{'' if ratio.count == 1 else 's'}, {interval_text} -> {_verdict(met)}"
            f"{', but the bar lies inside the interval' if inside else ''}")  # fmt: skip
    measured = []
    for peer in peers:
        theirs = timeline.ratios(peer.label)
        if theirs:
            interval = median_interval(theirs)
            measured.append(f"{peer.label} {Spread.of(theirs).median:.3f}x"
                            + (f" ({interval[0]:.3f}-{interval[1]:.3f})" if interval else ""))
    return line + (f" (measured alike: {', '.join(measured)})" if measured else "")
