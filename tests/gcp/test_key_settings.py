from mltoolkit.gcp.key_settings import key_settings
from mltoolkit.spec.deployment import DEFAULT_DATA_PLANE


def test_key_settings_of_the_main_resources(sketch_run, gpu_run):
    settings = {r.name: key_settings(r) for r in sketch_run.resources}
    assert settings["mltoolkit-pool-sketch"] == "machine=n1-standard-4, nodes=3-3, spot=True, disk=100GB pd-standard"
    assert "type=LoadBalancer, source_ranges=198.51.100.0/24" in settings["digits-service"]
    assert settings["digits-autoscaler"] == "replicas=3-6, cpu_target=70%"
    assert settings["mltoolkit-images"] == "id=mltoolkit, format=DOCKER, cleanup=delete-untagged"
    assert settings["kubernetes-provider"] == "kubeconfig=[secret]"
    assert settings["registry"] == ""  # components have no settings of their own
    # the balancer tier shows its BalancerSpec's policy and data plane; the model's pods have none
    plane = DEFAULT_DATA_PLANE  # the sketch's BalancerSpec() has the default
    assert settings["digits-balancer-deployment"].endswith(f", policy=ewma, data_plane={plane}")
    assert "policy" not in settings["digits-deployment"] and "data_plane" not in settings["digits-deployment"]
    gpu = {r.name: key_settings(r) for r in gpu_run.resources}
    assert "gpu=1xnvidia-tesla-t4" in gpu["mltoolkit-pool-gpu"]
