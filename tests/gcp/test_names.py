"""Names GKE and Google Cloud accept (issue 12.10)."""

import re

import pytest

from mltoolkit import SpecError
from mltoolkit.gcp.names import is_valid, resource_name
from mltoolkit.spec import ClusterSpec, ModelSpec
from tests.gcp.conftest import make_cluster, make_deployment, run

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize("name", ["1digits", "9", "d" * 41, "digits-", "Digits", "dig_its"])
def test_model_names_that_would_make_an_invalid_service_are_refused(name):
    with pytest.raises(SpecError) as info:
        ModelSpec.from_image("example.org/m:1", name=name)
    assert info.value.field == "ModelSpec.name"
    assert "starting with a letter" in str(info.value) and "1-40 characters" in str(info.value)


def test_the_longest_names_allowed_give_names_kubernetes_and_google_cloud_accept():
    model = ModelSpec.from_image("example.org/m:1", name="m" + "x" * 38 + "9", port=9000)  # 40
    cluster = make_cluster(name="c" + "y" * 38 + "z", load_balancer="l7")  # 40
    result = run(cluster, make_deployment(model))
    for resource in result.resources:
        if resource.type.startswith("kubernetes:") and "metadata" in resource.inputs:
            metadata = resource.inputs["metadata"]
            if resource.type == "kubernetes:core/v1:Service":
                assert DNS_1035.match(metadata["name"]) and len(metadata["name"]) <= 63
            for value in metadata.get("labels", {}).values():
                assert len(value) <= 63 and LABEL_VALUE.match(value), (resource.name, value)
    (policy,) = result.of_type("gcp:compute/securityPolicy:SecurityPolicy")
    assert is_valid(policy.inputs["name"]) and len(policy.inputs["name"]) <= 63


def test_resource_names_are_shortened_with_a_hash_only_when_too_long():
    assert resource_name("ml", "digits", "armor") == "ml-digits-armor"
    long_a = resource_name("c" * 40, "m" * 39 + "a", "armor")
    long_b = resource_name("c" * 40, "m" * 39 + "b", "armor")
    assert len(long_a) == 63 and is_valid(long_a) and long_a != long_b


def test_ipv6_sources_are_refused_for_the_l4_load_balancer():
    with pytest.raises(SpecError) as info:
        ClusterSpec(name="ml", project="my-proj", location="us-central1-a",
                    allowed_cidrs=("203.0.113.0/24", "2001:db8::/32"))
    assert info.value.field == "ClusterSpec.allowed_cidrs[1]" and "IPv4" in str(info.value)
    # Cloud Armor (l7) checks IPv6 ranges
    l7 = ClusterSpec(name="ml", project="my-proj", location="us-central1-a",
                     allowed_cidrs=("2001:db8::/32",), load_balancer="l7")
    assert l7.allowed_cidrs == ("2001:db8::/32",)
