"""Network: a VPC of its own for the cluster, VPC-native (alias IP ranges for pods and services).

Private Google Access is on, so private nodes still reach Artifact Registry, Cloud Storage and
gcr.io; with private nodes a Cloud Router + Cloud NAT gives them outbound access to other
registries.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

NODES_CIDR = "10.10.0.0/20"
PODS_CIDR = "10.20.0.0/14"
SERVICES_CIDR = "10.24.0.0/20"
PODS_RANGE = "pods"
SERVICES_RANGE = "services"


@dataclass(frozen=True)
class NetworkArgs:
    project: str
    region: str
    #: prefix of child names
    prefix: str
    #: add Cloud NAT (private nodes have no external addresses)
    nat: bool = False


class Network(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:Network"

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = gcp.compute.Network(
            f"{args.prefix}-vpc",
            project=args.project,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=child,
        )
        self.subnetwork = gcp.compute.Subnetwork(
            f"{args.prefix}-nodes",
            project=args.project,
            region=args.region,
            network=self.network.id,
            ip_cidr_range=NODES_CIDR,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=PODS_RANGE, ip_cidr_range=PODS_CIDR),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=SERVICES_RANGE, ip_cidr_range=SERVICES_CIDR
                ),
            ],
            opts=child,
        )
        self.router: gcp.compute.Router | None = None
        self.nat: gcp.compute.RouterNat | None = None
        if args.nat:
            self.router = gcp.compute.Router(
                f"{args.prefix}-router",
                project=args.project,
                region=args.region,
                network=self.network.id,
                opts=child,
            )
            self.nat = gcp.compute.RouterNat(
                f"{args.prefix}-nat",
                project=args.project,
                region=args.region,
                router=self.router.name,
                nat_ip_allocate_option="AUTO_ONLY",
                source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                opts=child,
            )
        self.register_outputs({"network": self.network.id, "subnetwork": self.subnetwork.id})
