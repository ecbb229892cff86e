from mltoolkit.gcp.network import NODES_CIDR, PODS_RANGE, SERVICES_RANGE, Network
from tests.gcp.conftest import make_cluster, run

SUBNET = "gcp:compute/subnetwork:Subnetwork"
NAT = "gcp:compute/routerNat:RouterNat"


def test_custom_vpc_with_alias_ranges_and_private_google_access(sketch_run):
    (vpc,) = sketch_run.of_type("gcp:compute/network:Network")
    assert vpc.inputs["autoCreateSubnetworks"] is False
    (subnet,) = sketch_run.of_type(SUBNET)
    assert subnet.inputs["ipCidrRange"] == NODES_CIDR
    assert subnet.inputs["region"] == "us-central1"
    assert subnet.inputs["network"] == "mltoolkit-vpc-id"
    assert subnet.inputs["privateIpGoogleAccess"] is True
    assert {r["rangeName"] for r in subnet.inputs["secondaryIpRanges"]} == {PODS_RANGE, SERVICES_RANGE}


def test_nat_only_for_private_nodes(sketch_run, deployment):
    assert sketch_run.of_type(NAT) == []
    private = run(make_cluster(private_nodes=True), deployment)
    (nat,) = private.of_type(NAT)
    (router,) = private.of_type("gcp:compute/router:Router")
    assert nat.inputs["router"] == router.outputs["name"]
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"
    (component,) = private.of_type(Network.TYPE)
    assert {r.name for r in private.children_of(component)} >= {nat.name, router.name}
