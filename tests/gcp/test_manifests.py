import json

import kubernetes_validate
import pytest

from mltoolkit.gcp import manifests
from mltoolkit.spec import ModelSpec
from tests.gcp.conftest import gpu_cluster, make_cluster, make_deployment, validate

LABELS = {"owner": "alice"}
IMAGE = "us-central1-docker.pkg.dev/my-project/mltoolkit/mltoolkit-serving:0.1.0"
MODEL_URL = "gs://bucket/models/digits-0123456789abcdef.joblib"


def file_deployment(deployment, cluster=None, **kwargs):
    return manifests.deployment(deployment, cluster or make_cluster(), LABELS, image=IMAGE, model_url=MODEL_URL, **kwargs)


def test_every_manifest_is_valid_kubernetes(deployment):
    image_model = make_deployment(ModelSpec.from_image("example.org/m:1", name="digits", port=9000))
    objects = [
        manifests.namespace(LABELS),
        manifests.service_account("digits", LABELS, "sa@my-project.iam.gserviceaccount.com"),
        manifests.service_account("digits", LABELS, None),
        file_deployment(deployment),
        file_deployment(deployment, gpu_cluster()),
        manifests.deployment(image_model, make_cluster(), LABELS, image="example.org/m:1", model_url=None),
        manifests.service("digits", make_cluster(), LABELS),
        manifests.service("digits", make_cluster(load_balancer="l7"), LABELS),
        manifests.service("digits", make_cluster(allowed_cidrs=()), LABELS),
        manifests.ingress("digits", LABELS),
        manifests.horizontal_pod_autoscaler(deployment, LABELS),
        manifests.pod_disruption_budget("digits", LABELS),
    ]
    for manifest in objects:
        validate(manifest)


def test_the_schema_check_catches_a_wrong_field(deployment):
    manifest = file_deployment(deployment)
    manifest["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(manifest)


def test_resources_probes_and_spread(deployment):
    spec = file_deployment(make_deployment(deployment.model, cpu="750m", memory="1Gi", cpu_limit="2"))["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == {"requests": {"cpu": "750m", "memory": "1Gi"}, "limits": {"memory": "1Gi", "cpu": "2"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    hostname, zone = pod["topologySpreadConstraints"]
    assert hostname["topologyKey"] == "kubernetes.io/hostname"
    assert (hostname["maxSkew"], hostname["whenUnsatisfiable"]) == (1, "DoNotSchedule")
    assert hostname["labelSelector"] == {"matchLabels": spec["selector"]["matchLabels"]}
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"
    assert "tolerations" not in pod  # CPU-only cluster


def test_cpu_limit_only_when_asked_and_memory_limit_defaults_to_request(deployment):
    (container,) = file_deployment(deployment)["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"memory": "2Gi"}


def test_only_replicas_that_request_gpus_tolerate_the_gpu_taint(deployment):
    cpu_pod = file_deployment(deployment, gpu_cluster())["spec"]["template"]["spec"]
    assert "tolerations" not in cpu_pod  # a CPU replica never takes (and pays for) a GPU node
    image_model = make_deployment(ModelSpec.from_image("example.org/cuda-model:1", name="digits"), gpu=1)
    pod = manifests.deployment(image_model, gpu_cluster(), LABELS, image="example.org/cuda-model:1",
                               model_url=None)["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    validate(manifests.deployment(image_model, gpu_cluster(), LABELS, image="x:1", model_url=None))


def test_file_model_is_fetched_by_an_init_container_and_served_per_the_replica_contract(deployment):
    pod = file_deployment(deployment)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    local = "/models/digits-0123456789abcdef.joblib"
    assert init["image"] == "gcr.io/google.com/cloudsdktool/google-cloud-cli:500.0.0-slim"
    assert init["command"] == ["gcloud", "storage", "cp", MODEL_URL, local]
    assert pod["volumes"] == [{"name": "model", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    assert pod["serviceAccountName"] == "digits-server"
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "mltoolkit.serving"]
    args = container["args"]
    options = dict(zip(args[::2], args[1::2]))
    assert options == {
        "--model-path": local,
        "--model-name": "digits",
        "--port": "8080",
        "--host": "0.0.0.0",
        "--replica-id": "$(POD_NAME)",
        "--max-request-bytes": str(deployment.max_request_bytes),
        "--max-batch-size": "64",
        "--max-wait-ms": "0.0",
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLTOOLKIT_MODEL_PATH"] == local and env["PORT"] == "8080" and env["MLTOOLKIT_HOST"] == "0.0.0.0"


def test_no_batching_flag(deployment):
    from mltoolkit.spec import BatchingSpec

    model = ModelSpec.from_file(deployment.model.path, name="digits", batching=BatchingSpec(enabled=False))
    (container,) = file_deployment(make_deployment(model))["spec"]["template"]["spec"]["containers"]
    assert "--no-batching" in container["args"] and "--max-batch-size" not in container["args"]


def test_image_model_runs_its_image_on_its_port():
    deployment = make_deployment(ModelSpec.from_image("example.org/m:1", name="digits", port=9000))
    pod = manifests.deployment(deployment, make_cluster(), LABELS, image="example.org/m:1", model_url=None)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]
    assert "command" not in container and "initContainers" not in pod


def test_service_variants():
    l4 = manifests.service("digits", make_cluster(), LABELS)
    assert l4["spec"]["type"] == "LoadBalancer"
    assert l4["spec"]["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    public = manifests.service("digits", make_cluster(allowed_cidrs=(), allow_public=True), LABELS)
    assert public["spec"]["loadBalancerSourceRanges"] == ["0.0.0.0/0"]
    nobody = manifests.service("digits", make_cluster(allowed_cidrs=()), LABELS)
    assert nobody["spec"]["type"] == "ClusterIP" and "annotations" not in nobody["metadata"]
    l7 = manifests.service("digits", make_cluster(load_balancer="l7"), LABELS)
    assert l7["spec"]["type"] == "ClusterIP" and "loadBalancerSourceRanges" not in l7["spec"]
    annotations = l7["metadata"]["annotations"]
    assert json.loads(annotations["cloud.google.com/neg"]) == {"ingress": True}
    assert json.loads(annotations["cloud.google.com/backend-config"]) == {"default": "digits"}


def test_backend_config_checks_the_ready_route_and_carries_the_armor_policy():
    config = manifests.backend_config("digits", LABELS, "ml-digits-armor")
    assert config["spec"]["healthCheck"] == {
        "type": "HTTP", "requestPath": "/v2/health/ready", "port": 8080, "checkIntervalSec": 5, "timeoutSec": 3
    }
    assert config["spec"]["securityPolicy"] == {"name": "ml-digits-armor"}
    assert "securityPolicy" not in manifests.backend_config("digits", LABELS, None)["spec"]


def test_autoscaler_and_disruption_budget(deployment):
    hpa = manifests.horizontal_pod_autoscaler(deployment, LABELS)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "digits"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 6)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    pdb = manifests.pod_disruption_budget("digits", LABELS)["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "digits"}}}


def test_labels_on_every_object(deployment):
    for manifest in (
        file_deployment(deployment),
        manifests.service("digits", make_cluster(), LABELS),
        manifests.pod_disruption_budget("digits", LABELS),
        manifests.namespace(LABELS),
    ):
        assert manifest["metadata"]["labels"]["owner"] == "alice"
    assert file_deployment(deployment)["spec"]["template"]["metadata"]["labels"]["owner"] == "alice"


# -- health checks where the pod listens (issue 12.7) --------------------------------------------


def test_image_model_health_checks_use_its_port_and_no_path_it_may_not_serve():
    deployment = make_deployment(ModelSpec.from_image("example.org/m:1", name="digits", port=9000))
    (container,) = manifests.deployment(deployment, make_cluster(), LABELS, image="example.org/m:1",
                                        model_url=None)["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "http"} and "httpGet" not in container["readinessProbe"]
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert manifests.serving_port(deployment) == 9000 and manifests.health_path(deployment) is None
    config = manifests.backend_config("digits", LABELS, None, port=9000, request_path=None)
    assert config["spec"]["healthCheck"] == {"type": "HTTP", "port": 9000, "checkIntervalSec": 5, "timeoutSec": 3}


def test_l7_health_check_of_the_program_is_the_balancer_tiers_whatever_the_model(deployment):
    from tests.gcp.conftest import run

    # the L7 load balancer sends to the balancer pods (port 8080, /-/health), not to the replicas
    image_model = make_deployment(ModelSpec.from_image("example.org/m:1", name="digits", port=9000))
    for spec in (deployment, image_model):
        result = run(make_cluster(load_balancer="l7"), spec)
        health = result.named("digits-backend-config").inputs["spec"]["healthCheck"]
        assert (health["port"], health.get("requestPath")) == (8080, "/-/health")


# -- hardened pods (issue 12.8) ------------------------------------------------------------------


def _pods(deployment):
    image_model = make_deployment(ModelSpec.from_image("example.org/m:1", name="digits", port=9000))
    yield "file model", file_deployment(deployment)["spec"]["template"]["spec"]
    yield "image model", manifests.deployment(image_model, make_cluster(), LABELS, image="example.org/m:1",
                                              model_url=None)["spec"]["template"]["spec"]


def test_every_container_is_hardened(deployment):
    for kind, pod in _pods(deployment):
        assert pod["automountServiceAccountToken"] is False, kind
        assert pod["securityContext"]["runAsNonRoot"] is True, kind
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, kind
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            where = (kind, container["name"])
            assert context["runAsNonRoot"] is True, where
            assert context["allowPrivilegeEscalation"] is False and context["privileged"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert ":" in container["image"].rsplit("/", 1)[-1], where  # a tag, never implicit latest
            assert "cpu" in container["resources"]["requests"] and "memory" in container["resources"]["limits"], where


def test_the_toolkit_containers_have_read_only_roots_and_a_writable_tmp(deployment):
    pod = file_deployment(deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001  # the serving image's own user
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], container["name"]
    (init,) = pod["initContainers"]
    assert init["image"].endswith(f":{manifests.GCLOUD_VERSION}-slim")  # pinned by version
    assert {"name": "CLOUDSDK_CONFIG", "value": "/tmp/gcloud"} in init["env"]
    # an image model's filesystem needs are unknown: its root stays writable
    (_, image_pod) = list(_pods(deployment))[1]
    assert image_pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
