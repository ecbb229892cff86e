import pytest
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from mltoolkit.gcp.mocks import CLUSTER_CA, CLUSTER_ENDPOINT, L4_IP, L7_IP, CloudMocks


def new(typ, inputs, name="r"):
    return CloudMocks("my-project").new_resource(MockResourceArgs(typ=typ, name=name, inputs=inputs))


def test_cluster_gets_endpoint_and_ca():
    _, state = new("gcp:container/cluster:Cluster", {"name": "ml"})
    assert state["endpoint"] == CLUSTER_ENDPOINT
    assert state["masterAuth"]["clusterCaCertificate"] == CLUSTER_CA


def test_service_account_gets_its_email():
    _, state = new("gcp:serviceaccount/account:Account", {"accountId": "ml-nodes"})
    assert state["email"] == "ml-nodes@my-project.iam.gserviceaccount.com"
    assert state["name"] == "projects/my-project/serviceAccounts/ml-nodes@my-project.iam.gserviceaccount.com"


def test_repository_gets_its_docker_uri():
    _, state = new("gcp:artifactregistry/repository:Repository", {"repositoryId": "ml", "location": "us-east1"})
    assert state["registryUri"] == "us-east1-docker.pkg.dev/my-project/ml"


def test_autonamed_resources_get_a_mock_name():
    _, state = new("gcp:storage/bucket:Bucket", {"location": "US"}, name="ml-models")
    assert state["name"] == "ml-models-mock" and state["url"] == "gs://ml-models-mock"


def test_load_balancers_get_test_net_addresses():
    _, lb = new("kubernetes:core/v1:Service", {"spec": {"type": "LoadBalancer"}})
    _, internal = new("kubernetes:core/v1:Service", {"spec": {"type": "ClusterIP"}})
    _, ingress = new("kubernetes:networking.k8s.io/v1:Ingress", {"spec": {}})
    assert lb["status"]["loadBalancer"]["ingress"][0]["ip"] == L4_IP
    assert "status" not in internal
    assert ingress["status"]["loadBalancer"]["ingress"][0]["ip"] == L7_IP
    assert L4_IP.startswith("203.0.113.") and L7_IP.startswith("203.0.113.")


def test_an_invoke_is_an_error():
    with pytest.raises(NotImplementedError, match="gcp:organizations/getProject"):
        CloudMocks().call(MockCallArgs(token="gcp:organizations/getProject:getProject", args={}, provider=""))
