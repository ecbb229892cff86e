"""What the panels show, as HTML text and PNG bytes computed from the toolkit's results. Pure.

Everything shown comes from the toolkit: a plan (``LocalTarget.plan``'s DataFrame or
``mltoolkit.gcp.plan.Plan``), ``observe.summarize``, utilization frames, ``observe.balance``.
These functions only format.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mltoolkit.errors import MltoolkitError, SpecError
from mltoolkit.planning import Plan

ERROR_STYLE = "color:#b00020"


def escape(text: Any) -> str:
    return html.escape(str(text))


def frame_html(frame: pd.DataFrame, *, index: bool = False, formatters: dict[str, Any] | None = None) -> str:
    """A DataFrame as a compact HTML table (floats with 1 decimal unless ``formatters`` says)."""
    return frame.to_html(
        index=index,
        index_names=False,
        border=0,
        na_rep="–",
        float_format=lambda v: f"{v:,.1f}",
        formatters=formatters,
        classes="mltoolkit-table",
    )


# ---------------------------------------------------------------------------- errors


def field_error_html(error: SpecError) -> str:
    """The message shown next to a field: the value and what is allowed."""
    return f'<span style="{ERROR_STYLE}">✗ {escape(repr(error.value))} is not allowed; expected {escape(error.allowed)}</span>'


def error_html(error: BaseException, action: str) -> str:
    """A failed action in the panel. The toolkit's errors carry their own next step in the
    message; anything else gets a generic one."""
    kind = type(error).__name__
    message = str(error) or kind
    if isinstance(error, MltoolkitError):
        next_step = ""
    else:
        next_step = (
            "<br>Next step: this error is not one the toolkit expected; the panel's "
            "<code>last_traceback</code> has the details."
        )
    return (
        f'<div style="{ERROR_STYLE}"><b>{escape(action)} failed ({escape(kind)})</b>'
        f'<pre style="white-space:pre-wrap;margin:0">{escape(message)}</pre>{next_step}</div>'
    )


# ---------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlanSummary:
    """A plan reduced to what the panel shows: tables, cost per hour and month, notes."""

    what: str
    tables: tuple[tuple[str, pd.DataFrame], ...]
    cost_per_hour: float
    cost_per_month: float
    notes: tuple[str, ...] = ()


def plan_summary(plan: Plan) -> PlanSummary:
    """From the ``Plan`` any target's ``plan()`` returns (cost items only where there are any)."""
    tables: tuple[tuple[str, pd.DataFrame], ...] = (("Resources", plan.resources),)
    if len(plan.costs):
        tables += (("Cost items", plan.costs),)
    return PlanSummary(
        what=f"{len(plan.resources)} resources",
        tables=tables,
        cost_per_hour=float(plan.cost_per_hour),
        cost_per_month=float(plan.cost_per_month),
        notes=tuple(plan.notes),
    )


def cost_text(summary: PlanSummary) -> str:
    return (
        f"Plan: {summary.what} — estimated ${summary.cost_per_hour:,.4f}/hour "
        f"(${summary.cost_per_month:,.2f}/month)"
    )


def plan_html(summary: PlanSummary) -> str:
    parts = [f"<b>{escape(cost_text(summary))}</b>"]
    for title, frame in summary.tables:
        parts.append(f"<h5>{escape(title)}</h5>{frame_html(frame, formatters=_money(frame))}")
    if summary.notes:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in summary.notes) + "</ul>")
    return "".join(parts)


def _money(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        column: (lambda v: f"{v:.4f}")
        for column in frame.columns
        if "usd" in str(column) or "price" in str(column)
    }


# ---------------------------------------------------------------------------- monitor


def latency_html(summary: pd.DataFrame) -> str:
    """``observe.summarize`` output: one row overall, one per replica."""
    return frame_html(
        summary,
        index=True,
        formatters={"error_rate": lambda v: f"{v:.1%}" if not math.isnan(v) else "–"},
    )


UTILIZATION_SHOWN = ("node", "replicas", "cpu_cores", "cpu_percent", "memory_bytes", "memory_percent", "in_flight", "served")


def utilization_html(reading: pd.DataFrame) -> str:
    """One utilization reading (one row per node), memory in MiB."""
    shown = reading[[c for c in UTILIZATION_SHOWN if c in reading.columns]].copy()
    if "memory_bytes" in shown:
        shown["memory_bytes"] = shown["memory_bytes"].astype("float") / 2**20
        shown = shown.rename(columns={"memory_bytes": "memory_mib"})
    return frame_html(shown, formatters={"cpu_cores": lambda v: f"{v:.2f}"})


def cv_text(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


def balance_html(replicas_cv: float | None, nodes_cv: float | None) -> str:
    """The balance indicator: coefficient of variation (0 = perfectly even)."""
    return (
        "<b>Balance</b> (coefficient of variation, 0 = perfectly even): "
        f"replicas <b>{cv_text(replicas_cv)}</b> (requests served in this load test) · "
        f"nodes <b>{cv_text(nodes_cv)}</b> (mean CPU % over the readings shown)"
    )


def figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()


def cpu_plot_png(history: pd.DataFrame, plot: Any, size: tuple[float, float] = (6.0, 2.6)) -> bytes:
    """``plot(history, ax=...)`` (e.g. ``observe.plot_cpu_by_node``) drawn on a figure of its
    own, outside pyplot (safe on a worker thread), as PNG bytes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    plot(history, ax=figure.subplots())
    figure.tight_layout()
    return figure_png(figure)
