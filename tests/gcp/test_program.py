import importlib
import inspect

import pytest

from mltoolkit import SpecError
from mltoolkit.gcp.mocks import L4_IP
from mltoolkit.gcp.plan import diff_runs
from mltoolkit.gcp.program import EXPORTS, build_program
from mltoolkit.spec import ModelSpec, NodePoolSpec
from tests.gcp.conftest import PROJECT, gpu_cluster, make_cluster, make_deployment, run

LABELS = {"owner": "alice", "expires": "20300101t0000z"}


def _args_class(type_token):
    """pulumi_gcp's Args class of a type token: gcp:container/nodePool:NodePool -> container.NodePoolArgs."""
    module = type_token.split(":")[1].split("/")[0]
    name = type_token.split(":")[2]
    return getattr(importlib.import_module(f"pulumi_gcp.{module}"), f"{name}Args")


def test_exports(sketch_run):
    outputs = sketch_run.outputs
    assert set(EXPORTS) == set(outputs)
    assert outputs["registry_url"] == f"us-central1-docker.pkg.dev/{PROJECT}/mltoolkit"
    assert outputs["bucket"] == "mltoolkit-models-mock"
    assert outputs["cluster_name"] == "mltoolkit"
    assert outputs["endpoint_ip"] == L4_IP and outputs["endpoint_url"] == f"http://{L4_IP}"
    assert outputs["namespace"] == "mltoolkit" and outputs["model_name"] == "digits"
    assert outputs["serving_image"].startswith(outputs["registry_url"] + "/mltoolkit-serving:")
    assert sketch_run.secret_outputs == {"kubeconfig"}


def test_labels_on_every_gcp_resource_that_takes_labels(sketch_run, gpu_run, deployment):
    every_kind = run(gpu_cluster(load_balancer="l7", private_nodes=True), deployment, labels=LABELS)
    checked = set()
    expected = {"managed-by": "mltoolkit", **LABELS}
    for result, expected in ((sketch_run, expected), (every_kind, expected), (gpu_run, {"managed-by": "mltoolkit"})):
        for resource in result.resources:
            if not resource.type.startswith("gcp:"):
                continue
            parameters = inspect.signature(_args_class(resource.type).__init__).parameters
            for field, key in (("labels", "labels"), ("resource_labels", "resourceLabels")):
                if field in parameters:
                    assert resource.inputs[key].items() >= expected.items(), resource.name
                    checked.add(resource.type)
            if resource.type == "gcp:container/nodePool:NodePool":  # the VMs' labels, no expiry
                stable = {k: v for k, v in expected.items() if k != "expires"}
                assert resource.inputs["nodeConfig"]["resourceLabels"].items() >= stable.items()
                assert "expires" not in resource.inputs["nodeConfig"]["resourceLabels"]
                checked.add(resource.type)
    assert checked == {
        "gcp:artifactregistry/repository:Repository",
        "gcp:storage/bucket:Bucket",
        "gcp:container/cluster:Cluster",
        "gcp:container/nodePool:NodePool",
        "gcp:compute/securityPolicy:SecurityPolicy",
    }


def test_user_labels_reach_gcp_and_kubernetes(sketch_run):
    (bucket,) = sketch_run.of_type("gcp:storage/bucket:Bucket")
    assert bucket.inputs["labels"] == {"managed-by": "mltoolkit", "mltoolkit-cluster": "mltoolkit", **LABELS}
    (cluster,) = sketch_run.of_type("gcp:container/cluster:Cluster")
    assert cluster.inputs["resourceLabels"]["expires"] == "20300101t0000z"
    stable = {k: v for k, v in LABELS.items() if k != "expires"}
    for resource in sketch_run.resources:
        if resource.type.startswith("kubernetes:"):  # no expiry: it would restart the pods
            assert resource.inputs["metadata"]["labels"].items() >= stable.items(), resource.name
            assert "expires" not in resource.inputs["metadata"]["labels"], resource.name


def test_every_cloud_resource_sits_in_a_component(sketch_run):
    for resource in sketch_run.resources:
        if resource.custom:
            assert resource.parent_type.startswith("mltoolkit:gcp:"), resource.name
        else:
            assert resource.type.startswith("mltoolkit:gcp:") and resource.parent_name == ""


def test_bad_labels_fail_before_any_program(deployment):
    with pytest.raises(SpecError) as info:
        build_program(make_cluster(), deployment, labels={"Owner": "alice"})
    assert info.value.field == "labels.Owner"


def test_a_replica_larger_than_any_node_is_rejected(model):
    with pytest.raises(SpecError) as info:
        build_program(make_cluster(), make_deployment(model, cpu="6"))  # n1-standard-4: 4 vCPUs
    assert info.value.field == "DeploymentSpec.cpu"
    with pytest.raises(SpecError) as info:
        build_program(make_cluster(), make_deployment(model, memory="16Gi"))  # 15 GB
    assert info.value.field == "DeploymentSpec.memory"
    bigger = make_cluster(node_pools=(NodePoolSpec("big", machine_type="n2-standard-16"),))
    assert callable(build_program(bigger, make_deployment(model, cpu="6", memory="16Gi")))


def test_a_model_file_deleted_after_the_spec_was_made_is_rejected(tmp_path, model_file):
    path = tmp_path / "gone.joblib"
    path.write_bytes(open(model_file, "rb").read())
    deployment = make_deployment(ModelSpec.from_file(str(path), name="digits"))
    path.unlink()
    with pytest.raises(SpecError) as info:
        build_program(make_cluster(), deployment)
    assert info.value.field == "ModelSpec.path"


def test_wrong_argument_types_are_named(deployment):
    with pytest.raises(SpecError) as info:
        build_program({"name": "ml"}, deployment)
    assert info.value.field == "cluster"


# -- what a change of spec changes ---------------------------------------------------------------


def changes(before, after):
    frame = diff_runs(before, after)
    return {(row.name, row.change): tuple(row.properties) for row in frame.itertuples()}


def test_replicas_change_only_the_deployment_and_autoscaler(deployment):
    before = run(make_cluster(), deployment)
    after = run(make_cluster(), make_deployment(deployment.model, replicas=5))
    assert changes(before, after) == {
        ("digits-deployment", "changed"): ("spec.replicas",),
        ("digits-autoscaler", "changed"): ("spec.maxReplicas", "spec.minReplicas"),
    }


def test_machine_type_changes_only_the_node_pool(deployment):
    pool = make_cluster().node_pools[0]
    after_pool = NodePoolSpec(**{**pool.__dict__, "machine_type": "n1-standard-8"})
    result = changes(run(make_cluster(), deployment), run(make_cluster(node_pools=(after_pool,)), deployment))
    assert result == {("mltoolkit-pool-sketch", "changed"): ("nodeConfig.machineType",)}


def test_node_counts_change_only_the_node_pool(deployment):
    pool = make_cluster().node_pools[0]
    after_pool = NodePoolSpec(**{**pool.__dict__, "min_nodes": 2, "max_nodes": 6})
    result = changes(run(make_cluster(), deployment), run(make_cluster(node_pools=(after_pool,)), deployment))
    assert result == {
        ("mltoolkit-pool-sketch", "changed"): (
            "autoscaling.totalMaxNodeCount",
            "autoscaling.totalMinNodeCount",
            "initialNodeCount",  # ignored on update (ignore_changes): no replacement
        )
    }


def test_l4_to_l7_changes_only_the_exposure(sketch_run, deployment):
    l4 = run(make_cluster(), deployment, labels=LABELS)
    l7 = run(make_cluster(load_balancer="l7"), deployment, labels=LABELS)
    result = changes(l4, l7)
    assert result == {
        ("digits-service", "changed"): (
            "metadata.annotations.cloud.google.com/backend-config",
            "metadata.annotations.cloud.google.com/neg",
            "spec.loadBalancerSourceRanges[0]",
            "spec.type",
        ),
        ("digits-ingress", "added"): (),
        ("digits-backend-config", "added"): (),
        ("mltoolkit-digits-armor", "added"): (),
    }


def test_a_new_model_uploads_a_new_object_and_rolls_the_deployment(deployment, tmp_path, digits_model_small):
    other = ModelSpec.from_object(digits_model_small, name="digits", directory=tmp_path)
    result = changes(run(make_cluster(), deployment), run(make_cluster(), make_deployment(other)))
    assert set(result) == {
        ("mltoolkit-model-digits", "changed"),
        ("digits-deployment", "changed"),
    }
    assert result[("mltoolkit-model-digits", "changed")] == ("name", "source.path")
    assert result[("digits-deployment", "changed")] == (
        "spec.template.spec.containers[0].args[1]",  # --model-path
        "spec.template.spec.containers[0].env[1].value",  # MLTOOLKIT_MODEL_PATH
        "spec.template.spec.initContainers[0].command[3]",  # gs:// source
        "spec.template.spec.initContainers[0].command[4]",  # local copy
    )


def test_adding_a_gpu_pool_adds_only_the_pool_for_a_cpu_model(deployment):
    result = changes(run(make_cluster(node_pools=gpu_cluster().node_pools[:1]), deployment), run(gpu_cluster(), deployment))
    assert result == {("mltoolkit-pool-gpu", "added"): ()}


# -- GPUs used when paid for (issue 12.6) --------------------------------------------------------


def test_a_gpu_deployment_requests_gpus_and_gke_alone_taints_the_pool():
    model = ModelSpec.from_image("us-docker.pkg.dev/p/r/cuda-model:1", name="digits")
    result = run(gpu_cluster(), make_deployment(model, gpu=1, cpu="2", memory="4Gi"))
    container = result.named("digits-deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    gpu_pool = result.named("mltoolkit-pool-gpu").inputs["nodeConfig"]
    assert gpu_pool["guestAccelerators"][0]["type"] == "nvidia-tesla-t4"
    assert not gpu_pool.get("taints")  # GKE adds nvidia.com/gpu=present:NoSchedule itself


@pytest.mark.parametrize(
    "cluster, model_kind, gpu, fragment",
    [
        (make_cluster(), "image", 1, "without a GPU node pool"),
        (gpu_cluster(), "image", 2, "at most 1"),
        (gpu_cluster(), "file", 1, "has no CUDA"),
    ],
)
def test_gpu_requests_nothing_can_serve_are_refused_before_the_program(model, cluster, model_kind, gpu, fragment):
    chosen = model if model_kind == "file" else ModelSpec.from_image("example.org/cuda:1", name="digits")
    with pytest.raises(SpecError) as info:
        build_program(cluster, make_deployment(chosen, gpu=gpu))
    assert info.value.field == "DeploymentSpec.gpu" and fragment in str(info.value)


@pytest.fixture
def digits_model_small():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    return LogisticRegression(max_iter=300).fit(X[300:600], y[300:600])


# -- a second up() later: nothing restarts, nothing is replaced ----------------------------------

#: where a new expiry may show up: label updates Google Cloud applies in place
IN_PLACE_LABEL_CHANGES = {
    "gcp:artifactregistry/repository:Repository": {"labels.expires"},
    "gcp:storage/bucket:Bucket": {"labels.expires"},
    "gcp:container/cluster:Cluster": {"resourceLabels.expires"},
    "gcp:compute/securityPolicy:SecurityPolicy": {"labels.expires"},
}


@pytest.mark.parametrize("cluster", [make_cluster(), gpu_cluster(load_balancer="l7", private_nodes=True)],
                         ids=["l4", "l7-gpu-private"])
def test_two_runs_at_different_clock_times_restart_and_replace_nothing(cluster, deployment):
    from datetime import datetime, timedelta, timezone

    from mltoolkit.stack.labels import resource_labels

    def labels_at(hour, minute):
        now = datetime(2030, 1, 1, hour, minute, tzinfo=timezone.utc)
        return resource_labels(owner="alice", stack="dev", ttl=timedelta(hours=8), now=now)

    morning, evening = labels_at(8, 0), labels_at(20, 17)
    assert morning["expires"] != evening["expires"]
    result = changes(run(cluster, deployment, labels=morning), run(cluster, deployment, labels=evening))
    by_type = {r.name: r.type for r in run(cluster, deployment, labels=morning).resources}
    for (name, change), properties in result.items():
        assert change == "changed", name
        allowed = IN_PLACE_LABEL_CHANGES.get(by_type[name], set())
        assert set(properties) <= allowed, (name, properties)  # a pod template, node pool, object...
    # the expiry still reaches the resources that are labelled in place
    assert ("mltoolkit-cluster", "changed") in result


# -- ordering and ownership ----------------------------------------------------------------------


def test_the_kubernetes_provider_waits_for_every_node_pool(gpu_run):
    (provider,) = gpu_run.of_type("pulumi:providers:kubernetes")
    pools = {r.urn for r in gpu_run.of_type("gcp:container/nodePool:NodePool")}
    assert len(pools) == 2
    assert pools <= set(provider.dependencies)
    # every Kubernetes object goes through that provider, so waits for the pools too
    for resource in gpu_run.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider.startswith(provider.urn + "::"), resource.name


def test_pods_start_after_the_model_is_uploaded_and_readable(sketch_run):
    deployment = sketch_run.named("digits-deployment")
    needed = {r.urn for r in sketch_run.resources if r.type in (
        "gcp:storage/bucketObject:BucketObject",
        "gcp:storage/bucketIAMMember:BucketIAMMember",
        "gcp:serviceaccount/iAMMember:IAMMember",
    )}
    assert len(needed) == 3 and needed <= set(deployment.dependencies)


def test_the_autoscaler_owns_the_replica_count_after_creation(sketch_run):
    deployment = sketch_run.named("digits-deployment")
    assert deployment.inputs["spec"]["replicas"] == 3  # created with the spec's count...
    assert "spec.replicas" in deployment.ignore_changes  # ...then never reset under the HPA
    (hpa,) = sketch_run.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert hpa.inputs["spec"]["minReplicas"] == 3


# -- the serving image exists before any pod needs it (issue 12.1) -------------------------------


def test_up_builds_the_serving_image_before_the_deployment(sketch_run):
    (build,) = sketch_run.of_type("command:local:Command")
    digest = build.inputs["triggers"][0]
    image = f"us-central1-docker.pkg.dev/{PROJECT}/mltoolkit/mltoolkit-serving:{digest}"
    assert build.inputs["create"].startswith(f"gcloud artifacts docker images describe {image}")
    assert f"gcloud builds submit" in build.inputs["create"] and f"--tag {image}" in build.inputs["create"]
    repository = sketch_run.named("mltoolkit-images")
    assert repository.urn in build.dependencies  # the registry exists first
    deployment = sketch_run.named("digits-deployment")
    assert build.urn in deployment.dependencies  # pods are created after the push
    assert deployment.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert sketch_run.outputs["serving_image"] == image
    tier = sketch_run.named("digits-balancer-deployment")  # the balancer runs from the same image
    assert build.urn in tier.dependencies
    assert tier.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_an_image_model_still_builds_the_balancers_image_and_a_named_one_builds_nothing(deployment):
    image_model = make_deployment(ModelSpec.from_image("example.org/m:1", name="digits"))
    result = run(make_cluster(), image_model)
    (build,) = result.of_type("command:local:Command")  # the balancer tier needs the mltoolkit image
    replicas = result.named("digits-deployment")
    assert replicas.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == "example.org/m:1"
    assert build.urn not in replicas.dependencies  # the model's own image waits for no build
    tier = result.named("digits-balancer-deployment")
    assert build.urn in tier.dependencies
    assert tier.inputs["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        f"us-central1-docker.pkg.dev/{PROJECT}/mltoolkit/mltoolkit-serving:"
    )
    named = run(make_cluster(serving_image="example.org/serving:1"), deployment)
    assert not named.of_type("command:local:Command")
    assert named.outputs["serving_image"] == "example.org/serving:1"


def test_an_unchanged_package_and_model_is_no_new_build(deployment):
    before, after = run(make_cluster(), deployment), run(make_cluster(), deployment)
    assert not [c for c in changes(before, after) if c[0].startswith("serving-image")]
