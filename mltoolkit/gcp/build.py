"""ServingImage: the model server image built and pushed by ``up()`` before any pod needs it.

A ``pulumi_command`` ``local.Command`` runs ``images.build_command`` on the user's machine (the
``gcloud`` of the kernel, the same login as the kubeconfig's auth plugin): Cloud Build builds the
context that ``GKETarget.up`` wrote (the installed package, pinned requirements, a Dockerfile)
and pushes it to the stack's repository, unless that content-hash tag is already there.
``triggers`` holds the hash, so a changed context is a new build and an unchanged one is no
change at all. The Deployment depends on this resource: pods are created after the push.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from mltoolkit.gcp import images


@dataclass(frozen=True)
class ServingImageArgs:
    project: str
    region: str
    registry_url: pulumi.Input[str]
    #: the content hash that tags the image
    digest: str
    #: where ``GKETarget.up`` writes the context before the build runs
    context_dir: str
    #: the repository (and the node pools' read access to it) must exist first
    after: tuple[pulumi.Resource, ...] = ()


class ServingImage(pulumi.ComponentResource):
    TYPE = "mltoolkit:gcp:ServingImage"

    def __init__(self, name: str, args: ServingImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        self.image: pulumi.Output[str] = pulumi.Output.concat(
            args.registry_url, f"/{images.SERVING_IMAGE_NAME}:{args.digest}"
        )
        self.build = command.local.Command(
            f"{name}-build",
            create=self.image.apply(
                lambda image: images.build_command(image, args.context_dir, args.project, args.region)
            ),
            triggers=[args.digest],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        self.register_outputs({"image": self.image})
