"""``plan(cluster, deployment)``: what ``up()`` would create on Google Cloud, and what it costs.

The program of ``build_program`` runs in this process under Pulumi's mocks (no CLI, no cloud, no
credentials); every resource it registers becomes a row, and the cost line items are priced from
the table in ``mltoolkit.gcp.prices``. Values only the cloud knows (bucket name, IP addresses)
are mocked: TEST-NET addresses and ``-mock`` names.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from mltoolkit import planning
from mltoolkit.gcp import costs, images, prices
from mltoolkit.gcp.balancer_manifests import BalancerTierSpec
from mltoolkit.gcp.balancer_tier import capacity_note
from mltoolkit.gcp.key_settings import key_settings
from mltoolkit.gcp.mock_runtime import MockRun, RegisteredResource, run_program
from mltoolkit.gcp.mocks import CloudMocks
from mltoolkit.gcp.program import COMPONENTS, build_program, serving_build
from mltoolkit.spec.cluster import ClusterSpec
from mltoolkit.spec.deployment import DeploymentSpec

RESOURCE_COLUMNS = ["type", "name", "parent", "settings"]
DIFF_COLUMNS = ["type", "name", "change", "properties"]
SECRET = "[secret]"


@dataclass(frozen=True, eq=False, kw_only=True)
class Plan(planning.Plan):
    """The resources a spec creates and their estimated cost (at the pools' minimum node counts):
    the ``Plan`` every target returns, with what only the GKE program knows."""

    cluster: ClusterSpec
    deployment: DeploymentSpec
    #: with every node pool at its max_nodes
    cost_per_hour_max: float
    #: the stack outputs as they come out under mocks; secrets shown as "[secret]"
    outputs: dict[str, Any]
    run: MockRun = field(repr=False)

    def inputs(self, name: str) -> dict[str, Any]:
        """All inputs of one resource, by name (as the provider would receive them)."""
        return self.run.named(name).inputs

    def kubernetes_manifests(self) -> list[dict[str, Any]]:
        """The Kubernetes objects of the plan as manifests (for ``kubectl``, linters, checkov)."""
        return kubernetes_manifests(self.run)

    def diff(self, other: Plan) -> pd.DataFrame:
        """What changes from this plan to ``other``: added, removed and changed resources."""
        return diff_runs(self.run, other.run)

    def __str__(self) -> str:
        lines = [
            f"Plan for cluster {self.cluster.name!r} in {self.cluster.project}/{self.cluster.location}, "
            f"model {self.deployment.model.name!r}: {len(self.resources)} resources",
            "",
            self.resources.to_string(index=False, max_colwidth=90),
            "",
            self.costs.to_string(index=False, float_format=lambda v: f"{v:.6g}"),
            "",
            f"Estimated cost: ${self.cost_per_hour:.4f}/hour, ${self.cost_per_month:.2f}/month "
            f"({prices.HOURS_PER_MONTH} h); ${self.cost_per_hour_max:.4f}/hour at max nodes",
            *[f"- {note}" for note in self.notes],
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<h4>Plan: cluster {html.escape(self.cluster.name)} "
            f"({html.escape(self.cluster.project)}/{html.escape(self.cluster.location)}), "
            f"model {html.escape(self.deployment.model.name)}</h4>"
            f"<p><b>${self.cost_per_hour:.4f}/hour</b>, <b>${self.cost_per_month:.2f}/month</b> "
            f"({prices.HOURS_PER_MONTH} h); ${self.cost_per_hour_max:.4f}/hour at max nodes</p>"
            f"{self.resources.to_html(index=False)}"
            f"{self.costs.to_html(index=False, float_format=lambda v: f'{v:.6g}')}"
            f"<ul>{notes}</ul>"
        )


def kubernetes_manifests(run: MockRun) -> list[dict[str, Any]]:
    """Every Kubernetes object a run registered, as a manifest with ``apiVersion`` and ``kind``
    (``kubernetes:apps/v1:Deployment`` -> ``apps/v1``, ``Deployment``)."""
    manifests = []
    for resource in run.resources:
        if not resource.type.startswith("kubernetes:"):
            continue
        _, api, kind = resource.type.split(":")
        group, version = api.rsplit("/", 1)
        api_version = version if group == "core" else f"{group}/{version}"
        manifests.append({"apiVersion": api_version, "kind": kind, **resource.inputs})
    return manifests


def _display_order(resource: RegisteredResource) -> tuple[int, int, str]:
    """Each component, then its children by name: registration order varies from run to run."""
    group = resource.parent_name or resource.name
    rank = COMPONENTS.index(group) if group in COMPONENTS else len(COMPONENTS)
    return rank, 1 if resource.parent_name else 0, resource.name


def resource_frame(run: MockRun) -> pd.DataFrame:
    rows = [
        {"type": r.type, "name": r.name, "parent": r.parent_name, "settings": key_settings(r)}
        for r in sorted(run.resources, key=_display_order)
    ]
    return pd.DataFrame(rows, columns=RESOURCE_COLUMNS)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list):
        flat = {}
        for i, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{i}]"))
        return flat or {prefix: []}
    return {prefix: value}


def changed_properties(before: RegisteredResource, after: RegisteredResource) -> list[str]:
    """Dotted paths of the inputs that differ between two registrations of one resource."""
    old, new = _flatten(before.inputs), _flatten(after.inputs)
    return sorted(k for k in set(old) | set(new) if old.get(k, ...) != new.get(k, ...))


def diff_runs(before: MockRun, after: MockRun) -> pd.DataFrame:
    old = {(r.type, r.name): r for r in before.resources}
    new = {(r.type, r.name): r for r in after.resources}
    rows = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            rows.append({"type": key[0], "name": key[1], "change": "removed", "properties": []})
        elif key not in old:
            rows.append({"type": key[0], "name": key[1], "change": "added", "properties": []})
        else:
            changed = changed_properties(old[key], new[key])
            if changed:
                rows.append({"type": key[0], "name": key[1], "change": "changed", "properties": changed})
    return pd.DataFrame(rows, columns=DIFF_COLUMNS)


def _notes(cluster: ClusterSpec, deployment: DeploymentSpec, items: list[costs.LineItem]) -> list[str]:
    elsewhere = "" if cluster.region == prices.PRICE_REGION else f"; {cluster.region} may cost more"
    notes = [
        f"Prices: {prices.PRICE_REGION} list prices as of {prices.PRICES_AS_OF} from the table in "
        f"mltoolkit/gcp/prices.py (not live){elsewhere}.",
        "Not included: network egress, load balancer and NAT data processing, Cloud Armor requests, "
        "Cloud Build minutes; the GKE free-tier credit ($74.40/month, one zonal cluster per billing "
        "account) is not subtracted.",
        "Costs count each node pool at min_nodes; the 'at max nodes' figure counts max_nodes.",
    ]
    if not cluster.exposed:
        notes.append(
            "No external endpoint: allowed_cidrs is empty, so the Service is ClusterIP only. "
            "Set ClusterSpec.allowed_cidrs (or allow_public=True) to get a load balancer."
        )
    build = serving_build(cluster, deployment)
    if build is not None:
        context, _ = build
        once = images.CLOUD_BUILD_PER_MINUTE * images.BUILD_MINUTES
        pins = ", ".join(f"{k}=={v}" for k, v in context.requirements.items())
        notes.append(
            f"The serving image {context.image(images.registry_url(cluster))} is built by up() with "
            f"Cloud Build (gcloud builds submit, from the installed package) before any pod starts, "
            f"and skipped when that tag exists: about {images.BUILD_MINUTES} build-minutes, "
            f"${once:.2f} once at ${images.CLOUD_BUILD_PER_MINUTE}/minute after the monthly free "
            f"minutes (not in the hourly cost). Pinned: {pins}."
        )
    notes.append(capacity_note(cluster, deployment, BalancerTierSpec()))
    missing = costs.unpriced(items)
    if missing:
        notes.append(f"No price in the table for: {', '.join(missing)} (counted as $0).")
    return notes


def plan(
    cluster: ClusterSpec,
    deployment: DeploymentSpec,
    *,
    labels: Mapping[str, str] = {},
    impersonate_service_account: str | None = None,
) -> Plan:
    """Run the GKE program under mocks and return its resources and estimated cost."""
    program = build_program(  # validates before anything runs
        cluster, deployment, labels=labels, impersonate_service_account=impersonate_service_account
    )
    run = run_program(program, CloudMocks(cluster.project), project="mltoolkit", stack=cluster.name)
    items = costs.line_items(run.resources, scale="min")
    per_hour = costs.total_per_hour(items)
    per_hour_max = costs.total_per_hour(costs.line_items(run.resources, scale="max"))
    outputs = {k: (SECRET if k in run.secret_outputs else v) for k, v in run.outputs.items()}
    return Plan(
        title=f"cluster {cluster.name} in {cluster.project}/{cluster.location}, model {deployment.model.name}",
        cluster=cluster,
        deployment=deployment,
        resources=resource_frame(run),
        costs=costs.cost_frame(items),
        cost_per_hour=per_hour,
        cost_per_month=per_hour * prices.HOURS_PER_MONTH,
        cost_per_hour_max=per_hour_max,
        outputs=outputs,
        notes=tuple(_notes(cluster, deployment, items)),
        run=run,
    )
