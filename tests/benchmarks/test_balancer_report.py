"""benchmarks/peers/balancer_report.py: the balancer table against calling a replica directly."""

from dataclasses import replace

from peers.balancer_report import balancer_cells, balancer_table
from peers.proxies import BALANCERS, DIRECT
from peers.results import Cell, Results
from peers.stats import Spread


def test_added_latency_and_throughput_are_paired_with_direct_calls(make_result):
    results = Results()
    nginx = Cell("nginx round_robin", 1, 1)
    rounds = [(0.05, 0.25, 12.0), (0.10, 0.20, 14.5), (0.05, 0.30, 13.0)]  # p50s and nginx's CPU
    for round_, (direct_p50, nginx_p50, cpu) in enumerate(rounds):
        results.add(Cell(DIRECT.label, 1, 1), round_, make_result(rps=20000, p50=direct_p50, p99=1.0))
        nginx_run = make_result(rps=5000, p50=nginx_p50, p99=3.0)
        results.add(nginx, round_, replace(nginx_run, cpu_us_per_request=cpu))
    table = balancer_table(results, [Cell(DIRECT.label, 1, 1), nginx])
    assert table.splitlines()[0].endswith("CPU us/req")
    direct_line, nginx_line = table.splitlines()[2:]
    # the baseline is not compared to itself, and runs no balancer process
    assert direct_line.split()[-4:] == ["-", "-", "-", "-"]
    # added p50 per round: 0.20, 0.10, 0.25 -> 0.20 [0.10-0.25]; p99: 2.00 each; req/s: 0.25x
    assert "0.20 [0.10-0.25]" in nginx_line and "2.00 [2.00-2.00]" in nginx_line
    assert nginx_line.endswith("0.25 [0.25-0.25]  13.0 [12.0-14.5]")


def test_cells_are_every_system_at_every_connection_count():
    cells = balancer_cells(BALANCERS, (1, 64))
    assert len(cells) == 2 * len(BALANCERS)
    assert cells[:2] == [Cell(DIRECT.label, 1, 1), Cell(DIRECT.label, 1, 64)]


def test_goal_lines_say_met_or_not_met_from_paired_rounds(make_result):
    from peers.balancer_report import static_goals
    from peers.proxies import NGINX_LEAST, OURS

    results = Results()
    for round_ in range(2):
        results.add(Cell(DIRECT.label, 1, 1), round_, make_result(rps=20000, p50=0.05, p99=0.50))
        results.add(Cell(DIRECT.label, 1, 64), round_, make_result(rps=40000))
        results.add(Cell(NGINX_LEAST.label, 1, 1), round_, make_result(p50=0.10, p99=0.70))
        results.add(Cell(NGINX_LEAST.label, 1, 64), round_, make_result(rps=20000))
        # ours: 0.6x nginx's req/s; added p50 0.08 ms (1.6x nginx's 0.05); added p99 0.5 (2.5x 0.2)
        results.add(Cell(OURS.label, 1, 1), round_, make_result(p50=0.13, p99=1.00))
        results.add(Cell(OURS.label, 1, 64), round_, make_result(rps=12000))
    throughput, p50, p99 = static_goals(results, OURS, NGINX_LEAST, (1, 64))
    assert "0.60 [0.60-0.60]x" in throughput and throughput.endswith("-> met")
    assert "= 1.60x" in p50 and p50.endswith("-> met")
    assert "= 2.50x" in p99 and p99.endswith("-> NOT met")


def test_the_fleet_goal_sets_each_system_against_the_fleet_runs_next_to_it(make_result):
    from peers.balancer_report import FleetTimeline, fleet_goal
    from peers.proxies import DIRECT_FLEET, HAPROXY_LEAST, NGINX_LEAST, OURS

    timeline = FleetTimeline()
    # round 0: the machine slows down during the round, the fleet with it
    for label, rps in [(DIRECT_FLEET.label, 10000), (OURS.label, 8800), (DIRECT_FLEET.label, 8000),
                       (HAPROXY_LEAST.label, 7600), (DIRECT_FLEET.label, 8000)]:  # fmt: skip
        timeline.add(label, 0, make_result(rps=rps))
    # round 1: the fleet's last run is missing; ours is set against the one before it alone
    for label, rps in [(DIRECT_FLEET.label, 6000), (OURS.label, 5700)]:
        timeline.add(label, 1, make_result(rps=rps))
    # 8800 / mean(10000, 8000) = 0.978; 5700 / 6000 = 0.95; haproxy: 7600 / 8000 = 0.95
    assert Spread.of(timeline.ratios(OURS.label)).format(3) == "0.964 [0.950-0.978]"
    assert timeline.fleet_run(0).requests_per_s == 8000  # the round's median fleet run
    assert timeline.fleet_run(2) is None
    assert fleet_goal(timeline, OURS, (1, 64), peers=(NGINX_LEAST, HAPROXY_LEAST)).endswith(
        "0.964 [0.950-0.978]x over 2 runs, too few runs for a 90% interval of the median -> met "
        "(measured alike: haproxy leastconn 0.950x)")
    slow = FleetTimeline()
    for label, rps in [(DIRECT_FLEET.label, 5000), (OURS.label, 4485), (DIRECT_FLEET.label, 5000)]:
        slow.add(label, 0, make_result(rps=rps))
    assert fleet_goal(slow, OURS, (1, 64)).endswith("0.897x over 1 run, too few runs for a 90% "
                                                    "interval of the median -> NOT met")  # not "0.90x"


def test_the_fleet_goal_says_when_the_bar_lies_inside_the_interval_of_the_median(make_result):
    from peers.balancer_report import FleetTimeline, fleet_goal
    from peers.proxies import DIRECT_FLEET, OURS

    def timeline(ratios):
        line = FleetTimeline()
        for ratio in ratios:  # one run of ours between two fleet runs of 10,000 req/s
            line.add(DIRECT_FLEET.label, 0, make_result(rps=10000))
            line.add(OURS.label, 0, make_result(rps=10000 * ratio))
        line.add(DIRECT_FLEET.label, 0, make_result(rps=10000))
        return line

    # five runs: the interval of the median is [min-max] (93.75 %)
    clear = fleet_goal(timeline([0.92, 0.95, 0.93, 0.97, 0.91]), OURS, (1, 64))
    assert fleet_goal(timeline([0.92, 0.95, 0.93, 0.97, 0.91]), OURS, (1, 64), peers=(OURS,)).endswith(
        "(measured alike: mltoolkit ewma [haproxy] 0.930x (0.910-0.970))")  # a peer's interval
    assert clear.endswith("0.930 [0.910-0.970]x over 5 runs, 90% interval of the median 0.910-0.970 -> met")
    noisy = fleet_goal(timeline([0.92, 0.95, 0.93, 0.97, 0.85]), OURS, (1, 64))
    assert noisy.endswith("90% interval of the median 0.850-0.970 -> met, but the bar lies inside the interval")
    under = fleet_goal(timeline([0.82, 0.85, 0.83, 0.87, 0.95]), OURS, (1, 64))
    assert under.endswith("0.820-0.950 -> NOT met, but the bar lies inside the interval")
    assert fleet_goal(FleetTimeline(), OURS, (1, 64)).endswith("-> no data")
