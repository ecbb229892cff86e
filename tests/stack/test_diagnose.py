import json
from pathlib import Path

from mltoolkit.stack.diagnose import (
    Diagnostic,
    classify_failure,
    parse_lock_holder,
    parse_pending,
    parse_permission,
    parse_quota,
)
from mltoolkit.stack.errors import (
    ApiNotEnabledError,
    GoogleCredentialsError,
    PendingOperationsError,
    PermissionDeniedError,
    QuotaExceededError,
    StackLockedError,
    StackNotFoundError,
    StackOperationError,
)
from mltoolkit.stack.events import strip_colors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pulumi"
CLUSTER = "urn:pulumi:dev::mltoolkit::mltoolkit:gcp:GkeCluster$gcp:container/cluster:Cluster::ml-cluster"


def diagnostics(name):
    """The error/warning diagnostics of a replayed scenario, as the SDK relay collects them."""
    events = json.loads((FIXTURES / f"{name}.json").read_text())["events"]
    return [
        Diagnostic(e["diagnosticEvent"].get("urn", ""), e["diagnosticEvent"]["severity"],
                   strip_colors(e["diagnosticEvent"]["message"]).strip())
        for e in events if "diagnosticEvent" in e
    ]


def classify(diags=(), *, kind="CommandError", stdout="", stderr="", alive=None):
    return classify_failure(
        operation="up", stack="dev", backend="file:///state", error_kind=kind,
        stdout=stdout, stderr=stderr, diagnostics=list(diags), lock_holder_alive=alive,
    )


def test_quota_numbers_parsed_from_the_googleapi_message():
    [diag] = [d for d in diagnostics("up_quota_error") if d.urn == CLUSTER]
    [shortfall] = parse_quota(diag)
    assert shortfall.metric == "CPUS" and shortfall.scope == "regional"
    # request requires 24, is short 16, quota 8 with 8 available
    assert (shortfall.requested, shortfall.short_by, shortfall.limit, shortfall.available) == (24, 16, 8, 8)
    assert shortfall.project == "my-proj"
    assert shortfall.resource == "gcp:container/cluster:Cluster ml-cluster"


def test_compute_api_quota_format():
    diag = Diagnostic(CLUSTER, "error", "googleapi: Error 403: Quota 'SSD_TOTAL_GB' exceeded.  Limit: 500.0 in region us-central1., quotaExceeded")
    [shortfall] = parse_quota(diag)
    assert (shortfall.metric, shortfall.limit, shortfall.scope) == ("SSD_TOTAL_GB", 500.0, "region")


def test_quota_error_message_names_resource_quota_and_next_step():
    error = classify(diagnostics("up_quota_error"))
    assert isinstance(error, QuotaExceededError)
    text = str(error)
    assert "gcp:container/cluster:Cluster ml-cluster: quota CPUS (regional quota) needs 24" in text
    assert "only 8 are available" in text
    assert "https://console.cloud.google.com/iam-admin/quotas?project=my-proj" in text
    assert "target.down()" in text
    assert "requestId" not in text  # the JSON details are left out


def test_permission_errors_list_each_missing_permission():
    diags = diagnostics("up_permission_denied")
    problems = [p for d in diags for p in parse_permission(d)]
    assert [(p.permission, p.on) for p in problems] == [
        ("artifactregistry.repositories.create", "//artifactregistry.googleapis.com/projects/my-proj/locations/us-central1"),
        ("container.clusters.create", "projects/my-proj"),
    ]
    error = classify(diags)
    assert isinstance(error, PermissionDeniedError)
    assert "gcp:container/cluster:Cluster ml-cluster: missing permission container.clusters.create on projects/my-proj" in str(error)
    assert "roles/container.admin" in str(error)


def test_missing_credentials_point_to_gcloud_login():
    error = classify(diagnostics("up_no_credentials"))
    assert isinstance(error, GoogleCredentialsError)
    assert "gcloud auth application-default login" in str(error)
    assert "could not find default credentials" in str(error)


def test_pending_operations_win_over_already_exists():
    diags = diagnostics("up_pending_operations")
    assert parse_pending(diags[0].message) == [
        "gcp:container/cluster:Cluster ml-cluster (interrupted while creating)"
    ]
    error = classify(diags)
    assert isinstance(error, PendingOperationsError)
    assert "target.refresh(clear_pending_creates=True)" in str(error)


def test_lock_error_names_the_holder_and_offers_cancel_and_refresh():
    stderr = (
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
        "or delete the lock file with `pulumi cancel`.\n  file:///state/.pulumi/locks/organization/mltoolkit/dev/"
        "x.json: created by alice@laptop (pid 4242) at 2025-01-31T15:30:00Z"
    )
    assert parse_lock_holder(stderr).pid == 4242
    error = classify(kind="ConcurrentUpdateError", stderr=stderr, alive=False)
    assert isinstance(error, StackLockedError)
    assert error.holder == "alice@laptop pid 4242"
    assert "target.cancel()" in str(error) and "target.refresh()" in str(error)
    still_running = classify(kind="ConcurrentUpdateError", stderr=stderr, alive=True)
    assert "still running" in str(still_running) and "target.cancel()" not in str(still_running)


def test_api_not_enabled():
    diag = Diagnostic(CLUSTER, "error", (
        "googleapi: Error 403: Kubernetes Engine API has not been used in project 123456 before or it is "
        "disabled. Enable it by visiting https://console.developers.google.com/apis/api/container.googleapis.com/"
        "overview?project=123456 then retry., accessNotConfigured"))
    error = classify([diag])
    assert isinstance(error, ApiNotEnabledError)
    assert "gcloud services enable container.googleapis.com --project 123456" in str(error)


def test_stack_not_found_and_generic_failures():
    assert isinstance(classify(kind="StackNotFoundError", stderr="error: no stack named 'dev' found"), StackNotFoundError)
    generic = classify([Diagnostic(CLUSTER, "error", "Error waiting for creating GKE cluster: timeout"),
                        Diagnostic("urn:pulumi:dev::mltoolkit::pulumi:pulumi:Stack::mltoolkit-dev", "error", "update failed")])
    assert isinstance(generic, StackOperationError)
    assert generic.details == ["gcp:container/cluster:Cluster ml-cluster: Error waiting for creating GKE cluster: timeout"]
    from_stderr = classify(stderr="error: could not read plugin: boom")
    assert from_stderr.details == ["could not read plugin: boom"]
