import math
from types import SimpleNamespace

import pandas as pd

from mltoolkit.errors import SpecError
from mltoolkit.local import LocalTargetError
from mltoolkit.observe import plot_cpu_by_node, summarize
from mltoolkit.widgets import render

from .html_tables import records, tables, text


def test_a_local_plan_costs_nothing_and_lists_its_processes():
    from mltoolkit.planning import Plan

    frame = pd.DataFrame({"kind": ["replica", "balancer"], "name": ["d-0", "balancer"], "usd_per_hour": [0.0, 0.0]})
    summary = render.plan_summary(Plan(title="local", resources=frame))
    assert (summary.what, summary.cost_per_hour, summary.cost_per_month) == ("2 resources", 0.0, 0.0)
    shown = render.plan_html(summary)
    assert len(tables(shown)) == 1  # no cost items: nothing is billed
    assert [r["name"] for r in records(shown)] == ["d-0", "balancer"]
    assert text(shown).startswith("Plan: 2 resources — estimated $0.0000/hour ($0.00/month)")


def test_a_gke_plan_shows_resources_cost_items_and_notes():
    plan = SimpleNamespace(
        resources=pd.DataFrame({"type": ["gcp:container/cluster:Cluster"], "name": ["ml-cluster"]}),
        costs=pd.DataFrame({"resource": ["ml-cluster"], "usd_per_hour": [0.1]}),
        cost_per_hour=0.25, cost_per_month=182.5, notes=("list prices <2024>",),
    )
    shown = render.plan_html(render.plan_summary(plan))
    assert len(tables(shown)) == 2
    assert records(shown, 1) == [{"resource": "ml-cluster", "usd_per_hour": "0.1000"}]
    assert "$0.2500/hour ($182.50/month)" in text(shown)
    assert "list prices &lt;2024&gt;" in shown


def test_field_errors_show_the_value_and_what_is_allowed():
    error = SpecError("DeploymentSpec.cpu", "<lots>", "a CPU quantity")
    shown = render.field_error_html(error)
    assert text(shown) == "✗ '<lots>' is not allowed; expected a CPU quantity"
    assert "<lots>" not in shown  # escaped


def test_toolkit_errors_carry_their_own_next_step_others_get_one():
    ours = render.error_html(LocalTargetError("replica exited; see its log"), "Up")
    assert "Up failed (LocalTargetError)" in text(ours) and "replica exited; see its log" in ours
    assert "Next step" not in ours
    other = render.error_html(RuntimeError("boom"), "Plan")
    assert "Plan failed (RuntimeError)" in text(other) and "boom" in other
    assert "last_traceback" in other


def test_latency_table_rows_are_overall_then_replicas():
    frame = pd.DataFrame({"scheduled_s": [0.0, 0.1, 0.2], "latency_s": [0.01, 0.03, float("nan")],
                          "status": [200, 200, 0], "replica": ["a", "b", None], "error": [None, None, "timeout"]})
    rows = records(render.latency_html(summarize(frame)))
    assert [r[""] for r in rows] == ["overall", "a", "b"]
    assert rows[0]["error_rate"] == "33.3%" and rows[1]["p50_ms"] == "10.0" and rows[2]["p50_ms"] == "30.0"


def test_utilization_table_shows_memory_in_mib():
    reading = pd.DataFrame({"time": [pd.Timestamp.now(tz="UTC")], "node": ["node-0"], "cpu_cores": [0.256],
                            "cpu_percent": [51.2], "memory_bytes": [3 * 2**20], "replicas": [1]})
    (row,) = records(render.utilization_html(reading))
    assert row == {"node": "node-0", "replicas": "1", "cpu_cores": "0.26", "cpu_percent": "51.2", "memory_mib": "3.0"}


def test_balance_shows_both_coefficients_or_a_dash():
    shown = text(render.balance_html(0.123, math.nan))
    assert "replicas 0.12" in shown and "nodes –" in shown


def test_cpu_plot_is_a_png_drawn_outside_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    history = pd.DataFrame({"time": pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:03"], utc=True),
                            "node": ["node-0", "node-0"], "cpu_percent": [10.0, 20.0]})
    png = render.cpu_plot_png(history, plot_cpu_by_node)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert plt.get_fignums() == before
