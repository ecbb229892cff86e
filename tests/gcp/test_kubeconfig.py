import json

from mltoolkit.gcp.kubeconfig import AUTH_PLUGIN, KubernetesAccess, context_name, render_kubeconfig
from mltoolkit.gcp.mocks import CLUSTER_CA, CLUSTER_ENDPOINT


def test_kubeconfig_uses_the_gke_auth_plugin():
    config = json.loads(render_kubeconfig("ctx", "203.0.113.10", "Q0E="))
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {"server": "https://203.0.113.10", "certificate-authority-data": "Q0E="}
    (user,) = config["users"]
    assert user["user"]["exec"]["command"] == AUTH_PLUGIN == "gke-gcloud-auth-plugin"
    assert user["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert "token" not in json.dumps(config)  # no credential in the file
    assert config["current-context"] == "ctx"
    # one identity: the application-default credentials the Google provider uses too
    assert user["user"]["exec"]["args"] == ["--use_application_default_credentials"]
    assert "env" not in user["user"]["exec"]


def test_exported_kubeconfig_is_a_secret_for_this_cluster(sketch_run):
    assert "kubeconfig" in sketch_run.secret_outputs
    config = json.loads(sketch_run.outputs["kubeconfig"])
    assert config["clusters"][0]["cluster"]["server"] == f"https://{CLUSTER_ENDPOINT}"
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == CLUSTER_CA
    assert config["current-context"] == context_name("my-project", "us-central1-a", "mltoolkit")


def test_provider_is_fed_the_secret_kubeconfig(sketch_run):
    (provider,) = sketch_run.of_type("pulumi:providers:kubernetes")
    assert provider.secret_inputs == ("kubeconfig",)
    assert provider.inputs["kubeconfig"] == sketch_run.outputs["kubeconfig"]
    assert provider.inputs["deleteUnreachable"] == "true"  # provider config crosses as strings
    (component,) = sketch_run.of_type(KubernetesAccess.TYPE)
    assert provider.parent_urn == component.urn
    # the provider itself (so every workload) waits for the node pools: a dependency of the
    # component alone is not inherited by its children
    (pool,) = sketch_run.of_type("gcp:container/nodePool:NodePool")
    assert pool.urn in provider.dependencies
