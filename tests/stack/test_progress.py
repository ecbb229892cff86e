import sys
import threading

from mltoolkit.stack.automation import EngineEvent  # the SDK's class, via its one importer

from mltoolkit.stack.events import StackEvent, from_engine_event
from mltoolkit.stack.progress import ProgressModel, counts_as_resource


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def feed(model, raw):
    for event in raw:
        model.handle(from_engine_event(EngineEvent.from_json(event)))


def test_replayed_up_counts_cloud_resources_only(raw_events):
    clock = Clock()
    model = ProgressModel("up", "dev", planned=7, cost_per_hour=0.41, clock=clock)
    seen = []
    model.add_listener(lambda snapshot, line: seen.append((snapshot, line)))
    clock.now = 112.5
    feed(model, raw_events("up_success"))
    snap = model.snapshot()
    # 12 resources in the stack: 7 cloud resources, 3 components, the default provider, the stack
    assert (snap.created, snap.updated, snap.deleted, snap.failed) == (7, 0, 0, 0)
    assert snap.planned == 7 and snap.done == 7
    assert snap.in_progress == () and snap.result is None
    assert snap.elapsed_s == 12.5
    lines = [line for _, line in seen]
    assert lines[:2] == [
        "creating gcp:artifactregistry/repository:Repository models",
        "created gcp:artifactregistry/repository:Repository models",
    ]
    assert not any("mltoolkit:gcp:" in line or "default_10_2_0" in line for line in lines)
    done = model.finish("succeeded")
    assert done.line() == "up dev: succeeded — 7 created, 0 updated, 0 deleted, 0 unchanged, 0 failed in 12.5 s"
    assert seen[-1] == (done, None)
    assert model.finish("failed") == done  # finishing twice changes nothing


def test_failing_up_counts_the_failure_and_keeps_a_one_line_diagnostic(raw_events):
    model = ProgressModel("up", "dev", planned=7, clock=Clock())
    feed(model, raw_events("up_quota_error"))
    snap = model.snapshot()
    assert (snap.created, snap.failed) == (2, 1)
    assert snap.current_step == "waiting for the next step"
    assert snap.diagnostics[0].startswith(
        "error (gcp:container/cluster:Cluster ml-cluster): googleapi: Error 403: Insufficient regional quota"
    )
    assert "\n" not in snap.diagnostics[0] and "requestId" not in snap.diagnostics[0]
    assert snap.diagnostics[1] == "error (pulumi:pulumi:Stack mltoolkit-dev): update failed"


def test_in_progress_steps_and_current_step():
    model = ProgressModel("up", "dev", clock=Clock())
    a = "urn:pulumi:dev::p::gcp:storage/bucket:Bucket::a"
    b = "urn:pulumi:dev::p::gcp:container/cluster:Cluster::b"
    model.handle(StackEvent("resource_pre", urn=a, resource_type="gcp:storage/bucket:Bucket", op="create", custom=True))
    model.handle(StackEvent("resource_pre", urn=b, resource_type="gcp:container/cluster:Cluster", op="update", custom=True))
    assert model.snapshot().in_progress == ("creating gcp:storage/bucket:Bucket a", "updating gcp:container/cluster:Cluster b")
    model.handle(StackEvent("resource_done", urn=b, resource_type="gcp:container/cluster:Cluster", op="update", custom=True))
    snap = model.snapshot()
    assert snap.current_step == "creating gcp:storage/bucket:Bucket a"
    assert (snap.updated, snap.planned) == (1, 2)
    assert snap.line() == "up dev: 1/2 resources — creating gcp:storage/bucket:Bucket a (0.0 s)"


def test_destroy_and_preview_counts(raw_events):
    destroy = ProgressModel("destroy", "dev", clock=Clock())
    feed(destroy, raw_events("destroy"))
    assert (destroy.snapshot().deleted, destroy.snapshot().created) == (7, 0)
    preview = ProgressModel("preview", "dev", clock=Clock())
    lines = []
    preview.add_listener(lambda s, line: lines.append(line))
    feed(preview, raw_events("preview"))
    assert preview.snapshot().created == 7
    assert "would be created gcp:container/cluster:Cluster ml-cluster" in lines


def test_what_counts_as_a_resource():
    def event(urn, kind, custom):
        return StackEvent("resource_pre", urn=urn, resource_type=kind, custom=custom)

    assert counts_as_resource(event("urn:pulumi:d::p::gcp:storage/bucket:Bucket::b", "gcp:storage/bucket:Bucket", True))
    assert not counts_as_resource(event("urn:pulumi:d::p::pulumi:pulumi:Stack::p-d", "pulumi:pulumi:Stack", False))
    assert not counts_as_resource(event("urn:pulumi:d::p::mltoolkit:gcp:Registry::r", "mltoolkit:gcp:Registry", False))
    assert not counts_as_resource(event("urn:pulumi:d::p::pulumi:providers:gcp::default_10_2_0", "pulumi:providers:gcp", True))
    assert counts_as_resource(event("urn:pulumi:d::p::pulumi:providers:kubernetes::k8s", "pulumi:providers:kubernetes", True))


def test_events_from_many_threads_are_all_counted():
    """on_event runs on gRPC worker threads: concurrent handle() calls must not lose updates."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        _count_from_threads()
    finally:
        sys.setswitchinterval(previous)


def _count_from_threads():
    model = ProgressModel("up", "dev")
    snapshots = []
    model.add_listener(lambda snapshot, line: snapshots.append(snapshot))

    def worker(thread):
        for i in range(200):
            urn = f"urn:pulumi:dev::p::gcp:storage/bucket:Bucket::t{thread}-{i}"
            model.handle(StackEvent("resource_pre", urn=urn, resource_type="gcp:storage/bucket:Bucket", op="create", custom=True))
            model.handle(StackEvent("resource_done", urn=urn, resource_type="gcp:storage/bucket:Bucket", op="create", custom=True))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    snap = model.snapshot()
    assert (snap.created, snap.planned, snap.in_progress) == (1600, 1600, ())
    assert len(snapshots) == 3200
    # every snapshot is internally consistent: never more done than seen
    assert all(s.done <= s.planned for s in snapshots)
