"""Pulumi mocks standing in for Google Cloud and Kubernetes: what the providers would compute.

Each resource's state is its inputs plus the outputs the real provider fills in that the program
reads (cluster endpoint and CA, service account email, repository URI, bucket name, load balancer
IPs). Addresses come from TEST-NET-3 (203.0.113.0/24) so a mocked value can never be mistaken for a
real one. An invoke (a provider function call) is an error: the program makes none.
"""

from __future__ import annotations

import base64
from typing import Any

from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

CLUSTER_ENDPOINT = "203.0.113.10"
L4_IP = "203.0.113.20"
L7_IP = "203.0.113.30"
CLUSTER_CA = base64.b64encode(b"mock cluster CA certificate").decode()


class CloudMocks(Mocks):
    """Mocks for the mltoolkit GKE program in ``project``."""

    def __init__(self, project: str = "mock-project") -> None:
        self.project = project

    def call(self, args: MockCallArgs) -> Any:
        raise NotImplementedError(f"the program made an unexpected invoke: {args.token}")

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        name = state.get("name") or f"{args.name}-mock"
        project = state.get("project") or self.project
        kind = args.typ
        if kind.startswith("gcp:"):
            state.setdefault("name", name)
            state.setdefault("project", project)
            state.setdefault("selfLink", f"https://www.googleapis.com/mock/{project}/{name}")
        if kind == "gcp:container/cluster:Cluster":
            state["endpoint"] = CLUSTER_ENDPOINT
            state["masterAuth"] = {"clusterCaCertificate": CLUSTER_CA}
        elif kind == "gcp:serviceaccount/account:Account":
            email = f"{state['accountId']}@{project}.iam.gserviceaccount.com"
            state.update(
                email=email,
                member=f"serviceAccount:{email}",
                name=f"projects/{project}/serviceAccounts/{email}",
            )
        elif kind == "gcp:artifactregistry/repository:Repository":
            state["name"] = state["repositoryId"]
            state["registryUri"] = f"{state['location']}-docker.pkg.dev/{project}/{state['repositoryId']}"
        elif kind == "gcp:storage/bucket:Bucket":
            state["url"] = f"gs://{name}"
        elif kind == "kubernetes:core/v1:Service":
            if state.get("spec", {}).get("type") == "LoadBalancer":
                state["status"] = {"loadBalancer": {"ingress": [{"ip": L4_IP}]}}
        elif kind == "kubernetes:networking.k8s.io/v1:Ingress":
            state["status"] = {"loadBalancer": {"ingress": [{"ip": L7_IP}]}}
        return f"{args.name}-id", state
