"""ModelEndpoint: how the model is reached from outside the cluster, and from where.

The Service (named after the model) selects the balancer tier's pods (``BalancerTier``), which
route to the model-server pods by the ``BalancerSpec`` policy; the L7 health check asks the
balancer's ``/-/health``.

- ``load_balancer="l4"``: a Service of type LoadBalancer (a regional passthrough network load
  balancer); GKE turns its ``loadBalancerSourceRanges`` — the spec's allowed CIDRs — into firewall
  rules.
- ``load_balancer="l7"``: container-native load balancing: a ClusterIP Service with NEGs behind a
  GKE Ingress (global external Application Load Balancer), its health check on the ready route set
  by a BackendConfig; the allowed CIDRs are enforced by a Cloud Armor policy (allow those ranges,
  deny the rest with 403). ``allow_public`` leaves the policy out.
- No allowed CIDRs and no ``allow_public``: a ClusterIP Service only; no external address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from mltoolkit.gcp import balancer_manifests, manifests, names
from mltoolkit.spec.cluster import ClusterSpec

#: Cloud Armor accepts at most this many ranges in one rule
RANGES_PER_RULE = 10
DEFAULT_RULE_PRIORITY = 2147483647


def armor_rules(cidrs: tuple[str, ...]) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    """Allow rules for ``cidrs`` (10 per rule) and the default rule denying everyone else."""

    def rule(action: str, priority: int, ranges: list[str], description: str) -> gcp.compute.SecurityPolicyRuleArgs:
        return gcp.compute.SecurityPolicyRuleArgs(
            action=action,
            priority=priority,
            description=description,
            match=gcp.compute.SecurityPolicyRuleMatchArgs(
                versioned_expr="SRC_IPS_V1",
                config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=ranges),
            ),
        )

    rules = [
        rule("allow", 1000 + i, list(cidrs[start : start + RANGES_PER_RULE]), "mltoolkit allowed_cidrs")
        for i, start in enumerate(range(0, len(cidrs), RANGES_PER_RULE))
    ]
    rules.append(rule("deny(403)", DEFAULT_RULE_PRIORITY, ["*"], "everyone else"))
    return rules


@dataclass(frozen=True)
class ModelEndpointArgs:
    cluster: ClusterSpec
    model_name: str
    provider: k8s.Provider
    #: what must exist first: the BalancerTier (after ModelServing and its namespace)
    serving: pulumi.Resource
    #: labels of the Kubernetes objects
    labels: dict[str, str] = field(default_factory=dict)
    #: labels of the Google Cloud resources (the Cloud Armor policy); None: ``labels``
    cloud_labels: dict[str, str] | None = None


def _first_ip(status: Any) -> str | None:
    if not status:
        return None
    balancer = status["load_balancer"] if isinstance(status, dict) else status.load_balancer
    ingress = (balancer["ingress"] if isinstance(balancer, dict) else balancer.ingress) if balancer else None
    if not ingress:
        return None
    first = ingress[0]
    return first["ip"] if isinstance(first, dict) else first.ip


def _url(ip: str | None) -> str | None:
    if not ip:
        return None
    port = "" if manifests.SERVICE_PORT == 80 else f":{manifests.SERVICE_PORT}"
    return f"http://{ip}{port}"


class ModelEndpoint(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:ModelEndpoint"

    def __init__(self, name: str, args: ModelEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        spec, model = args.cluster, args.model_name
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.serving])
        self.security_policy: gcp.compute.SecurityPolicy | None = None
        self.backend_config: k8s.apiextensions.CustomResource | None = None
        self.ingress: k8s.networking.v1.Ingress | None = None
        l7 = spec.exposed and spec.load_balancer == "l7"
        if l7:
            policy_name = None
            if not spec.allow_public:
                self.security_policy = gcp.compute.SecurityPolicy(
                    f"{spec.name}-{model}-armor",
                    # named, not auto-named: a random suffix could push it past 63 characters
                    name=names.resource_name(spec.name, model, "armor"),
                    project=spec.project,
                    description=f"sources allowed to reach {model} (mltoolkit)",
                    type="CLOUD_ARMOR",
                    rules=armor_rules(spec.allowed_cidrs),
                    labels=args.labels if args.cloud_labels is None else args.cloud_labels,
                    opts=pulumi.ResourceOptions(parent=self),
                )
                policy_name = self.security_policy.name
            config = pulumi.Output.from_input(policy_name).apply(
                lambda policy: balancer_manifests.front_backend_config(model, args.labels, policy)
            )
            self.backend_config = k8s.apiextensions.CustomResource(
                f"{model}-backend-config",
                api_version="cloud.google.com/v1",
                kind="BackendConfig",
                metadata=config.apply(lambda c: c["metadata"]),
                spec=config.apply(lambda c: c["spec"]),
                opts=k8s_opts,
            )
        service = balancer_manifests.front_service(model, spec, args.labels)  # to the balancer pods
        self.service = k8s.core.v1.Service(
            f"{model}-service",
            metadata=service["metadata"],
            spec=service["spec"],
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                depends_on=[args.serving, *([self.backend_config] if self.backend_config else [])],
            ),
        )
        if l7:
            ingress = manifests.ingress(model, args.labels)
            self.ingress = k8s.networking.v1.Ingress(
                f"{model}-ingress",
                metadata=ingress["metadata"],
                spec=ingress["spec"],
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[self.service]),
            )
            self.ip: pulumi.Output[str | None] = self.ingress.status.apply(_first_ip)
        elif spec.exposed:
            self.ip = self.service.status.apply(_first_ip)
        else:
            self.ip = pulumi.Output.from_input(None)
        self.url: pulumi.Output[str | None] = self.ip.apply(
            lambda ip: _url(ip)
        )
        self.register_outputs({"ip": self.ip, "url": self.url})
