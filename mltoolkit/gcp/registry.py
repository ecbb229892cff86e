"""Registry: the stack's Artifact Registry Docker repository and its model bucket."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

#: untagged images (superseded builds) are deleted once older than this
UNTAGGED_MAX_AGE = "604800s"  # 7 days


@dataclass(frozen=True)
class RegistryArgs:
    project: str
    region: str
    #: the repository ID (the last part of the registry URL) and the prefix of child names
    repository_id: str
    labels: dict[str, str] = field(default_factory=dict)


class Registry(pulumi.ComponentResource):
    """A Docker repository (``format="DOCKER"``) that deletes untagged images, and a bucket for
    model artifacts with uniform bucket-level access and public access prevention enforced."""

    TYPE = "mltoolkit:gcp:Registry"

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = gcp.artifactregistry.Repository(
            f"{args.repository_id}-images",
            project=args.project,
            location=args.region,
            repository_id=args.repository_id,
            format="DOCKER",
            description="mltoolkit model server images",
            labels=args.labels,
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="delete-untagged",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="UNTAGGED", older_than=UNTAGGED_MAX_AGE
                    ),
                )
            ],
            opts=child,
        )
        self.bucket = gcp.storage.Bucket(
            f"{args.repository_id}-models",
            project=args.project,
            location=args.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=True,  # down() removes the uploaded models with the bucket
            labels=args.labels,
            opts=child,
        )
        self.registry_url: pulumi.Output[str] = self.repository.registry_uri
        self.bucket_name: pulumi.Output[str] = self.bucket.name
        self.register_outputs({"registry_url": self.registry_url, "bucket": self.bucket_name})
