from mltoolkit.gcp.delivery import ModelDelivery, content_hash, object_name
from tests.gcp.conftest import PROJECT

MODEL_EMAIL = f"mltoolkit-model@{PROJECT}.iam.gserviceaccount.com"


def test_object_name_follows_the_content(tmp_path):
    path = tmp_path / "m.joblib"
    path.write_bytes(b"model one")
    first = object_name("digits", str(path))
    assert first == f"models/digits-{content_hash(str(path))}.joblib"
    assert object_name("digits", str(path)) == first
    path.write_bytes(b"model two")
    assert object_name("digits", str(path)) != first


def test_model_file_is_uploaded_to_the_stack_bucket(sketch_run, model_file):
    (model_object,) = sketch_run.of_type("gcp:storage/bucketObject:BucketObject")
    assert model_object.inputs["bucket"] == "mltoolkit-models-mock"
    assert model_object.inputs["source"] == {"asset": "file", "path": model_file}
    assert model_object.inputs["name"] == object_name("digits", model_file)
    assert sketch_run.outputs["model_url"] == f"gs://mltoolkit-models-mock/{object_name('digits', model_file)}"


def test_pods_may_read_that_bucket_and_nothing_else(sketch_run):
    (reader,) = sketch_run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert reader.inputs == {
        "bucket": "mltoolkit-models-mock",
        "role": "roles/storage.objectViewer",
        "member": f"serviceAccount:{MODEL_EMAIL}",
    }
    project_members = [r.inputs["member"] for r in sketch_run.of_type("gcp:projects/iAMMember:IAMMember")]
    assert f"serviceAccount:{MODEL_EMAIL}" not in project_members


def test_workload_identity_binds_the_pods_service_account(sketch_run):
    (binding,) = sketch_run.of_type("gcp:serviceaccount/iAMMember:IAMMember")
    assert binding.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert binding.inputs["member"] == f"serviceAccount:{PROJECT}.svc.id.goog[mltoolkit/digits-server]"
    assert binding.inputs["serviceAccountId"] == f"projects/{PROJECT}/serviceAccounts/{MODEL_EMAIL}"
    (cluster,) = sketch_run.of_type("gcp:container/cluster:Cluster")
    assert cluster.urn in binding.dependencies  # the identity pool exists once the cluster does
    (component,) = sketch_run.of_type(ModelDelivery.TYPE)
    assert binding.parent_urn == component.urn
