from mltoolkit.gcp.registry import UNTAGGED_MAX_AGE, Registry

REPOSITORY = "gcp:artifactregistry/repository:Repository"
BUCKET = "gcp:storage/bucket:Bucket"


def test_docker_repository_deletes_untagged_images(sketch_run):
    (repo,) = sketch_run.of_type(REPOSITORY)
    assert repo.inputs["format"] == "DOCKER"
    assert repo.inputs["location"] == "us-central1"
    assert repo.inputs["repositoryId"] == "mltoolkit"
    assert repo.inputs["cleanupPolicyDryRun"] is False
    (policy,) = repo.inputs["cleanupPolicies"]
    assert policy["action"] == "DELETE"
    assert policy["condition"] == {"tagState": "UNTAGGED", "olderThan": UNTAGGED_MAX_AGE}
    assert UNTAGGED_MAX_AGE == "604800s"  # a week


def test_model_bucket_is_uniform_and_never_public(sketch_run):
    (bucket,) = sketch_run.of_type(BUCKET)
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["location"] == "US-CENTRAL1"
    assert bucket.inputs["forceDestroy"] is True


def test_children_are_parented_to_the_component_which_registers_its_outputs(sketch_run):
    (component,) = sketch_run.of_type(Registry.TYPE)
    children = {r.type for r in sketch_run.children_of(component)}
    assert children == {REPOSITORY, BUCKET}
    assert sketch_run.component_outputs[component.urn] == {
        "registry_url": "us-central1-docker.pkg.dev/my-project/mltoolkit",
        "bucket": "mltoolkit-models-mock",
    }
