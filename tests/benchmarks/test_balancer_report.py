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
