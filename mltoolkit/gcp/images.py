"""The model server image: its name in the stack's registry and the Cloud Build step that makes it.

No Docker engine is needed anywhere: Cloud Build builds ``mltoolkit/serving/Dockerfile`` (context:
the source tree holding ``pyproject.toml`` and ``mltoolkit/``) and pushes it to the stack's
Artifact Registry repository. The exact step, once ``up()`` has created the registry::

    gcloud builds submit SOURCE_DIR --project PROJECT --region REGION --config cloudbuild.json

with ``cloudbuild.json`` from ``write_cloud_build_config`` (``cloud_build_command`` returns the
whole command line). Until the image exists the pods wait in ``ImagePullBackOff``, so build it
before the first ``up()`` that deploys a model file — or name an image you already have with
``ClusterSpec(serving_image=...)``.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from mltoolkit.spec.cluster import ClusterSpec

SERVING_IMAGE_NAME = "mltoolkit-serving"
DOCKERFILE = "mltoolkit/serving/Dockerfile"
DOCKER_BUILDER = "gcr.io/cloud-builders/docker"


def package_version() -> str:
    try:
        return metadata.version("mltoolkit")
    except metadata.PackageNotFoundError:
        return "dev"


def registry_url(cluster: ClusterSpec) -> str:
    """The Docker address of the stack's Artifact Registry repository (named after the cluster)."""
    return f"{cluster.region}-docker.pkg.dev/{cluster.project}/{cluster.name}"


def default_serving_image(registry: str, version: str | None = None) -> str:
    return f"{registry}/{SERVING_IMAGE_NAME}:{version or package_version()}"


def cloud_build_config(image: str) -> dict[str, Any]:
    """A Cloud Build config that builds the package's Dockerfile and pushes ``image``."""
    return {
        "steps": [{"name": DOCKER_BUILDER, "args": ["build", "-f", DOCKERFILE, "-t", image, "."]}],
        "images": [image],
    }


def write_cloud_build_config(path: str | os.PathLike[str], image: str) -> Path:
    target = Path(path)
    target.write_text(json.dumps(cloud_build_config(image), indent=2) + "\n")
    return target


def cloud_build_command(
    cluster: ClusterSpec, config_path: str | os.PathLike[str], source_dir: str | os.PathLike[str] = "."
) -> list[str]:
    """The ``gcloud builds submit`` command line that builds the serving image with Cloud Build."""
    return [
        "gcloud", "builds", "submit", str(source_dir),
        "--project", cluster.project,
        "--region", cluster.region,
        "--config", str(config_path),
    ]
