"""``Plan``: what ``target.plan(spec)`` returns on every target — the same type, so notebooks and
panels need no branch.

``resources`` has one row per thing ``up()`` would create (a process locally, a cloud resource on
GKE); ``costs`` one row per priced line item (empty locally: nothing is billed);
``cost_per_hour`` and ``cost_per_month`` their totals; ``notes`` what the numbers leave out. A
target may return a subclass carrying more (``mltoolkit.gcp.plan.Plan``: the mocked run, the
outputs, the cost at max nodes).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

HOURS_PER_MONTH = 730
#: the columns of ``Plan.costs``
COST_COLUMNS = ["resource", "item", "quantity", "unit", "unit_price_per_hour", "usd_per_hour"]


def empty_costs() -> pd.DataFrame:
    return pd.DataFrame(columns=COST_COLUMNS)


@dataclass(frozen=True, eq=False, kw_only=True)
class Plan:
    """The resources ``up(spec)`` would create and what they cost."""

    #: what is planned, in a few words ("3 processes on this machine", "cluster ml in ...")
    title: str
    #: one row per process or cloud resource
    resources: pd.DataFrame
    #: priced line items: resource, item, quantity, unit, unit_price_per_hour, usd_per_hour
    costs: pd.DataFrame = field(default_factory=empty_costs)
    cost_per_hour: float = 0.0
    cost_per_month: float = 0.0
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [
            f"Plan: {self.title}: {len(self.resources)} resources",
            "",
            self.resources.to_string(index=False, max_colwidth=90),
        ]
        if len(self.costs):
            lines += ["", self.costs.to_string(index=False, float_format=lambda v: f"{v:.6g}")]
        lines += [
            "",
            f"Estimated cost: ${self.cost_per_hour:.4f}/hour, ${self.cost_per_month:.2f}/month "
            f"({HOURS_PER_MONTH} h)",
            *[f"- {note}" for note in self.notes],
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        costs = self.costs.to_html(index=False, float_format=lambda v: f"{v:.6g}") if len(self.costs) else ""
        return (
            f"<h4>Plan: {html.escape(self.title)}</h4>"
            f"<p><b>${self.cost_per_hour:.4f}/hour</b>, <b>${self.cost_per_month:.2f}/month</b> "
            f"({HOURS_PER_MONTH} h)</p>"
            f"{self.resources.to_html(index=False)}{costs}"
            + (f"<ul>{notes}</ul>" if notes else "")
        )
