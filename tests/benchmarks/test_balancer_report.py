"""benchmarks/peers/balancer_report.py: the balancer table against calling a replica directly."""

from peers.balancer_report import balancer_cells, balancer_table
from peers.proxies import BALANCERS, DIRECT
from peers.results import Cell, Results


def test_added_latency_and_throughput_are_paired_with_direct_calls(make_result):
    results = Results()
    nginx = Cell("nginx round_robin", 1, 1)
    for round_, (direct_p50, nginx_p50) in enumerate([(0.05, 0.25), (0.10, 0.20), (0.05, 0.30)]):
        results.add(Cell(DIRECT.label, 1, 1), round_, make_result(rps=20000, p50=direct_p50, p99=1.0))
        results.add(nginx, round_, make_result(rps=5000, p50=nginx_p50, p99=3.0))
    table = balancer_table(results, [Cell(DIRECT.label, 1, 1), nginx])
    direct_line, nginx_line = table.splitlines()[2:]
    assert direct_line.split()[-3:] == ["-", "-", "-"]  # the baseline is not compared to itself
    # added p50 per round: 0.20, 0.10, 0.25 -> 0.20 [0.10-0.25]; p99: 2.00 each; req/s: 0.25x
    assert "0.20 [0.10-0.25]" in nginx_line and "2.00 [2.00-2.00]" in nginx_line
    assert nginx_line.endswith("0.25 [0.25-0.25]")


def test_cells_are_every_system_at_every_connection_count():
    cells = balancer_cells(BALANCERS, (1, 64))
    assert len(cells) == 2 * len(BALANCERS)
    assert cells[:2] == [Cell(DIRECT.label, 1, 1), Cell(DIRECT.label, 1, 64)]


def test_goal_lines_say_met_or_not_met_from_paired_rounds(make_result):
    from peers.balancer_report import fleet_goal, static_goals
    from peers.proxies import DIRECT_FLEET, HAPROXY_LEAST, NGINX_LEAST, OURS

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

    model = Results()
    model.add(Cell(DIRECT_FLEET.label, 1, 64), 0, make_result(rps=5000))
    model.add(Cell(OURS.label, 1, 64), 0, make_result(rps=4400))
    assert fleet_goal(model, OURS, (1, 64)).endswith("0.88x -> NOT met")
    model.add(Cell(HAPROXY_LEAST.label, 1, 64), 0, make_result(rps=4750))
    # the peers measured in the same rounds follow for scale; one not measured is left out
    assert fleet_goal(model, OURS, (1, 64), peers=(NGINX_LEAST, HAPROXY_LEAST)).endswith(
        "0.88x -> NOT met (same rounds: haproxy leastconn 0.95x)")
    assert fleet_goal(Results(), OURS, (1, 64)).endswith("-> no data")
