"""ModelDelivery: the model file in the stack's bucket, readable by the model pods only.

How a model leaves the notebook without a Docker engine: the saved model file is uploaded as a
``storage.BucketObject`` whose name carries a hash of its content, so a new model is a new
object, a new init-container command and so a rolling update of the Deployment. The pods'
Kubernetes service account is bound by Workload Identity to a Google service account that holds
``roles/storage.objectViewer`` on this bucket alone; an init container copies the object into an
``emptyDir`` before the server starts (see ``manifests.deployment``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_gcp as gcp

from mltoolkit.gcp import manifests
from mltoolkit.gcp.cluster import account_id

OBJECT_VIEWER = "roles/storage.objectViewer"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"


def content_hash(path: str, length: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def object_name(model_name: str, path: str) -> str:
    """``models/<model>-<content hash><suffix>``: a changed model file is a new object."""
    return f"models/{model_name}-{content_hash(path)}{Path(path).suffix}"


def workload_identity_member(project: str, namespace: str, service_account: str) -> str:
    return f"serviceAccount:{project}.svc.id.goog[{namespace}/{service_account}]"


@dataclass(frozen=True)
class ModelDeliveryArgs:
    project: str
    #: prefix of child names and service account IDs
    prefix: str
    bucket: pulumi.Input[str]
    model_name: str
    model_path: str
    #: the cluster must exist first: it creates the project's Workload Identity pool
    cluster: pulumi.Resource | None = None
    labels: dict[str, str] = field(default_factory=dict)


class ModelDelivery(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:ModelDelivery"

    def __init__(self, name: str, args: ModelDeliveryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.object_name = object_name(args.model_name, args.model_path)
        self.object = gcp.storage.BucketObject(
            f"{args.prefix}-model-{args.model_name}",
            bucket=args.bucket,
            name=self.object_name,
            source=pulumi.FileAsset(args.model_path),
            content_type="application/octet-stream",
            metadata={"model-name": args.model_name, **args.labels},
            opts=child,
        )
        self.account = gcp.serviceaccount.Account(
            f"{args.prefix}-model-sa",
            project=args.project,
            account_id=account_id(args.prefix, "model"),
            display_name=f"reads the models of {args.prefix} (mltoolkit)",
            opts=child,
        )
        self.email: pulumi.Output[str] = self.account.email
        self.bucket_reader = gcp.storage.BucketIAMMember(
            f"{args.prefix}-model-reader",
            bucket=args.bucket,
            role=OBJECT_VIEWER,
            member=pulumi.Output.concat("serviceAccount:", self.account.email),
            opts=child,
        )
        self.workload_identity = gcp.serviceaccount.IAMMember(
            f"{args.prefix}-model-workload-identity",
            service_account_id=self.account.name,
            role=WORKLOAD_IDENTITY_USER,
            member=workload_identity_member(
                args.project, manifests.NAMESPACE, manifests.service_account_name(args.model_name)
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.cluster] if args.cluster else None),
        )
        self.model_url: pulumi.Output[str] = pulumi.Output.concat("gs://", args.bucket, "/", self.object_name)
        #: what must exist before a pod fetches the model
        self.ready_for_pods: list[pulumi.Resource] = [self.object, self.bucket_reader, self.workload_identity]
        self.register_outputs({"model_url": self.model_url, "service_account": self.email})
