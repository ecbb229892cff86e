import pytest

from mltoolkit.errors import SpecError
from mltoolkit.spec import ClusterSpec
from mltoolkit.widgets.targets import TargetRequest, accepts_progress, build_target, call_with_progress


def test_progress_is_passed_only_where_a_method_takes_it():
    calls = []

    def with_progress(spec, *, progress=None):
        calls.append(("with", spec, progress))

    def without(spec):
        calls.append(("without", spec))

    def with_kwargs(spec, **kwargs):
        calls.append(("kwargs", spec, kwargs))

    call_with_progress(with_progress, "s", progress="p")
    call_with_progress(without, "s", progress="p")
    call_with_progress(with_kwargs, "s", progress="p")
    assert calls == [("with", "s", "p"), ("without", "s"), ("kwargs", "s", {"progress": "p"})]


def test_the_real_targets_differ_where_the_panel_expects():
    from mltoolkit.gcp.target import GKETarget
    from mltoolkit.local import LocalTarget

    assert accepts_progress(LocalTarget.up) and not accepts_progress(LocalTarget.down)
    assert accepts_progress(GKETarget.up) and accepts_progress(GKETarget.down)


def test_requests_are_checked():
    with pytest.raises(SpecError) as caught:
        TargetRequest(kind="aws")
    assert caught.value.field == "target"
    with pytest.raises(SpecError):
        TargetRequest(kind="gke")


def test_build_target_makes_a_quiet_local_target_without_starting_anything(tmp_path):
    from mltoolkit.local import LocalTarget

    target = build_target(TargetRequest(kind="local", nodes=3))
    assert isinstance(target, LocalTarget)
    assert target.nodes == 3 and not target.is_up


def test_build_target_makes_a_gke_target_for_the_stack():
    from mltoolkit.gcp.target import GKETarget

    cluster = ClusterSpec(name="ml", project="my-proj-1", location="us-central1-a")
    target = build_target(TargetRequest(kind="gke", cluster=cluster, stack="team-a"))
    assert isinstance(target, GKETarget)
    assert target.cluster is cluster and target.stack == "team-a"
