"""Fixtures for the GKE program tests: a real saved model, spec builders, runs under mocks."""

import pytest

from mltoolkit.spec import ClusterSpec, DeploymentSpec, ModelSpec, NodePoolSpec, original_sketch_deployment

PROJECT = "my-project"
ALLOWED = "198.51.100.0/24"  # TEST-NET-2: an address range that belongs to nobody


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A real LogisticRegression fitted on part of the digits data and saved with joblib.

    Shared by the session (the tests only read it); a small fit keeps a loaded machine fast.
    """
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    X, y = load_digits(return_X_y=True)
    classifier = LogisticRegression(max_iter=300).fit(X[:300], y[:300])
    directory = tmp_path_factory.mktemp("gcp-models")
    return ModelSpec.from_object(classifier, name="digits", directory=directory).path


@pytest.fixture(scope="session")
def model(model_file):
    return ModelSpec.from_file(model_file, name="digits")


@pytest.fixture(scope="session")
def deployment(model):
    return original_sketch_deployment(model)


def make_cluster(**overrides) -> ClusterSpec:
    values = {"project": PROJECT, "allowed_cidrs": (ALLOWED,)}
    values.update(overrides)
    return ClusterSpec.original_sketch(**values)


def make_deployment(model: ModelSpec, **overrides) -> DeploymentSpec:
    return original_sketch_deployment(model, **overrides)


def gpu_cluster(**overrides) -> ClusterSpec:
    pools = (
        NodePoolSpec("cpu", machine_type="e2-standard-4", min_nodes=1, max_nodes=3),
        NodePoolSpec("gpu", machine_type="n1-standard-8", gpu_type="nvidia-tesla-t4", min_nodes=0, max_nodes=2, spot=True),
    )
    return make_cluster(node_pools=pools, **overrides)


def run(cluster: ClusterSpec, deployment: DeploymentSpec, labels=None):
    """Run the program under the package's cloud mocks and return what it registered."""
    from mltoolkit.gcp.mock_runtime import run_program
    from mltoolkit.gcp.mocks import CloudMocks
    from mltoolkit.gcp.program import build_program

    return run_program(build_program(cluster, deployment, labels=labels or {}), CloudMocks(cluster.project))


@pytest.fixture(scope="session")
def sketch_run(deployment):
    """The original sketch with an allowed range, run once for the session."""
    return run(make_cluster(), deployment, labels={"owner": "alice", "expires": "20300101t0000z"})


@pytest.fixture(scope="session")
def gpu_run(deployment):
    return run(gpu_cluster(), deployment)


KUBERNETES_VERSION = "1.31"  # what GKE's channels run (REGULAR was 1.30-1.32 through 2025)


def kubernetes_objects(result):
    """The Kubernetes objects a run registered, as manifests (the provider is not one)."""
    return [r.inputs for r in result.resources if r.type.startswith("kubernetes:")]


def validate(manifest):
    """Validate one object against the Kubernetes OpenAPI schema, strictly (no unknown fields)."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
