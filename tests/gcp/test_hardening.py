"""checkov over the rendered Kubernetes objects: every remaining finding is listed with the
reason it stays, and a new finding fails the test (issue 12.8).

checkov is not a dev dependency: installing it downgrades ``packaging`` and ``python-dateutil``
under the rest of the toolkit. Install it apart (``python -m venv /tmp/checkov &&
/tmp/checkov/bin/pip install checkov``) and point ``CHECKOV`` at the executable, or put it on
PATH; without it this test is reported as skipped. The hardening itself is asserted without
checkov in tests/gcp/test_manifests.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from mltoolkit.gcp.plan import kubernetes_manifests
from mltoolkit.spec import ModelSpec
from tests.gcp.conftest import gpu_cluster, make_cluster, make_deployment, run

CHECKOV = os.environ.get("CHECKOV") or shutil.which("checkov")

#: the findings that stay, by variant, with the reason
ACCEPTED = {
    "CKV_K8S_11": "no CPU limit unless DeploymentSpec.cpu_limit asks: CFS throttling adds tail "
    "latency to a model server; the request reserves the CPU, the HPA scales on it",
    "CKV_K8S_43": "images are referred to by tag: the serving image's tag is its content hash "
    "(never rebuilt under the same tag), the init image is pinned by version; a digest is only "
    "known once the registry answers",
    "CKV_K8S_15": "imagePullPolicy stays IfNotPresent: tags are immutable (content hash, version), "
    "so Always would only add a registry round trip to every pod start",
    "CKV_K8S_38": "the balancer tier's pods mount their service-account token: they follow the "
    "replicas' EndpointSlices with it, under a Role limited to get/list/watch endpointslices; "
    "the model-server pods mount none",
    "CKV2_K8S_6": "no NetworkPolicy: GKE Standard enforces them only with Dataplane V2 or Calico; "
    "the pods listen on one port, reached through the load balancer limited to allowed_cidrs",
}
IMAGE_MODEL_ACCEPTED = {
    "CKV_K8S_40": "an image model runs as its image's own (non-root) user: its UID is not ours to pick",
    "CKV_K8S_22": "an image model's root filesystem stays writable: what it writes is unknown",
}


def _variants(model_path):
    file_model = ModelSpec.from_file(model_path, name="digits")
    image_model = ModelSpec.from_image("example.org/m:1", name="digits", port=9000)
    return {
        "file model, l7": (make_cluster(load_balancer="l7"), make_deployment(file_model), ACCEPTED),
        "file model, gpu, private": (gpu_cluster(private_nodes=True), make_deployment(file_model), ACCEPTED),
        "image model, l4": (make_cluster(), make_deployment(image_model), {**ACCEPTED, **IMAGE_MODEL_ACCEPTED}),
    }


def checkov_findings(manifests, directory) -> set[str]:
    directory.mkdir(parents=True)
    for i, manifest in enumerate(manifests):
        (directory / f"{i:02d}-{manifest['kind']}.yaml").write_text(yaml.safe_dump(manifest))
    result = subprocess.run(
        [CHECKOV, "-d", str(directory), "--framework", "kubernetes", "-o", "json", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: some check failed
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    return {c["check_id"] for r in reports for c in r["results"]["failed_checks"]}


@pytest.mark.skipif(CHECKOV is None, reason="checkov is not installed (see the module docstring)")
def test_checkov_finds_only_the_accepted_findings(model_file, tmp_path):
    for name, (cluster, deployment, accepted) in _variants(model_file).items():
        found = checkov_findings(kubernetes_manifests(run(cluster, deployment)), tmp_path / name.replace(" ", ""))
        new = found - set(accepted)
        assert not new, f"{name}: new checkov findings {sorted(new)}: fix them or record why they stay"
        assert found & {"CKV_K8S_11", "CKV_K8S_43"}, f"{name}: checkov ran but checked nothing"


def test_manifests_of_a_run_carry_api_version_and_kind(sketch_run):
    kinds = {(m["apiVersion"], m["kind"]) for m in kubernetes_manifests(sketch_run)}
    assert {("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler")} <= kinds
