import kubernetes_validate

from mltoolkit.gcp.serving import ModelServing
from mltoolkit.spec import ModelSpec
from tests.gcp.conftest import PROJECT, kubernetes_objects, make_cluster, make_deployment, run, validate

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def test_the_kubernetes_objects_the_program_creates_are_schema_valid(sketch_run, gpu_run, deployment):
    l7 = run(make_cluster(load_balancer="l7"), deployment)
    image_model = run(make_cluster(), make_deployment(ModelSpec.from_image("example.org/m:1", name="digits")))
    checked = set()
    for result in (sketch_run, gpu_run, l7, image_model):
        for manifest in kubernetes_objects(result):
            try:
                validate(manifest)
                checked.add(manifest["kind"])
            except kubernetes_validate.SchemaNotFoundError:
                # GKE's own custom resource: no OpenAPI schema shipped; tested field by field
                assert manifest["kind"] == "BackendConfig"
    assert checked == {
        "Namespace", "ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "Ingress", "Role", "RoleBinding",
    }


def test_registered_deployment_carries_the_spec(sketch_run):
    deployment = sketch_run.named("digits-deployment")
    spec = deployment.inputs["spec"]
    assert spec["replicas"] == 3
    (container,) = spec["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    (build,) = sketch_run.of_type("command:local:Command")  # the image up() builds, by content hash
    assert container["image"] == f"us-central1-docker.pkg.dev/{PROJECT}/mltoolkit/mltoolkit-serving:{build.inputs['triggers'][0]}"
    spread = spec["template"]["spec"]["topologySpreadConstraints"][0]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "DoNotSchedule")
    # the init container reads the object the delivery component uploaded
    (model_object,) = sketch_run.of_type("gcp:storage/bucketObject:BucketObject")
    (init,) = spec["template"]["spec"]["initContainers"]
    assert init["command"][3] == f"gs://mltoolkit-models-mock/{model_object.inputs['name']}"


def test_a_cpu_deployment_never_tolerates_the_gpu_taint(sketch_run, gpu_run):
    on_gpu_cluster = gpu_run.named("digits-deployment")  # a CPU model on a cluster with a GPU pool
    assert "tolerations" not in on_gpu_cluster.inputs["spec"]["template"]["spec"]
    cpu = sketch_run.named("digits-deployment")
    assert "tolerations" not in cpu.inputs["spec"]["template"]["spec"]


def test_service_account_is_bound_to_the_model_reader(sketch_run):
    account = sketch_run.named("digits-service-account")
    assert account.inputs["metadata"]["name"] == "digits-server"
    assert account.inputs["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": f"mltoolkit-model@{PROJECT}.iam.gserviceaccount.com"
    }


def test_image_model_has_no_bucket_identity(deployment):
    result = run(make_cluster(), make_deployment(ModelSpec.from_image("example.org/m:1", name="digits")))
    account = result.named("digits-service-account")
    assert "annotations" not in account.inputs["metadata"]
    assert result.of_type("gcp:storage/bucketObject:BucketObject") == []
    deployment_object = result.named("digits-deployment")
    assert deployment_object.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == "example.org/m:1"


def test_all_objects_go_through_the_cluster_provider_and_sit_in_the_component(sketch_run):
    (provider,) = sketch_run.of_type("pulumi:providers:kubernetes")
    (component,) = sketch_run.of_type(ModelServing.TYPE)
    children = sketch_run.children_of(component)
    assert sorted(r.type.split(":")[-1] for r in children) == [
        "Deployment", "HorizontalPodAutoscaler", "Namespace", "PodDisruptionBudget", "ServiceAccount"
    ]
    for resource in sketch_run.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider.startswith(provider.urn + "::"), resource.name
    assert sketch_run.component_outputs[component.urn] == {"namespace": "mltoolkit", "deployment": "digits"}
