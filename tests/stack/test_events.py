from mltoolkit.stack.automation import EngineEvent  # the SDK's class, via its one importer

from mltoolkit.stack.events import (
    StackEvent,
    from_engine_event,
    resource_label,
    strip_colors,
    summarize_message,
    urn_type,
)

CLUSTER = "urn:pulumi:dev::mltoolkit::mltoolkit:gcp:GkeCluster$gcp:container/cluster:Cluster::ml-cluster"


def convert(raw):
    return [from_engine_event(EngineEvent.from_json(e)) for e in raw]


def test_urn_parts_and_labels():
    assert urn_type(CLUSTER) == "gcp:container/cluster:Cluster"
    assert resource_label(CLUSTER) == "gcp:container/cluster:Cluster ml-cluster"
    assert resource_label("") == "the stack"
    assert urn_type("not-a-urn") == ""


def test_strip_colors_and_summarize():
    assert strip_colors("<{%fg 1%}>error: <{%reset%}>boom<{%reset%}>") == "error: boom"
    text = '<{%reset%}>1 error occurred:\n\t* googleapi: Error 403: nope\nDetails:\n[{"a": 1}]\n, forbidden'
    assert summarize_message(text) == "googleapi: Error 403: nope"
    assert len(summarize_message("x" * 1000, limit=50)) == 50


def test_replayed_up_events_convert(raw_events):
    events = convert(raw_events("up_success"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "prelude" and kinds[-2:] == ["summary", "cancel"]
    cluster = [e for e in events if e.urn == CLUSTER]
    assert [e.kind for e in cluster] == ["resource_pre", "resource_done"]
    assert cluster[0].op == "create" and cluster[0].custom is True
    component = next(e for e in events if e.resource_type == "mltoolkit:gcp:GkeCluster")
    assert component.custom is False  # the CLI omits "custom" for components
    assert events[-2].resource_changes == {"create": 12}


def test_diagnostics_keep_severity_urn_and_plain_text(raw_events):
    events = convert(raw_events("up_quota_error"))
    diags = [e for e in events if e.kind == "diagnostic"]
    assert [d.severity for d in diags] == ["error", "error"]
    assert diags[0].urn == CLUSTER
    assert "<{%" not in diags[0].message and "Insufficient regional quota" in diags[0].message
    failed = [e for e in events if e.kind == "resource_failed"]
    assert [e.urn for e in failed] == [CLUSTER]


def test_planning_flag_from_preview(raw_events):
    events = convert(raw_events("preview"))
    steps = [e for e in events if e.kind in ("resource_pre", "resource_done")]
    assert steps and all(e.planning for e in steps)


def test_unknown_event_is_other():
    event = from_engine_event(EngineEvent.from_json({"sequence": 3, "timestamp": 5}))
    assert event == StackEvent(kind="other", sequence=3, timestamp=5)
