"""Up with progress, interrupted runs, down, sweep and secrecy, over the replaying CLI."""

from datetime import datetime, timedelta, timezone

import pytest

from mltoolkit.stack.automation import ConfigEntry
from mltoolkit.stack.errors import QuotaExceededError, StackLockedError
from mltoolkit.stack.labels import OUTPUT_EXPIRES, OUTPUT_MODEL, OUTPUT_OWNER
from mltoolkit.stack.lifecycle import StackLifecycle, with_metadata
from mltoolkit.stack.records import StackRecord
from mltoolkit.stack.settings import StackSettings

NOW = datetime(2025, 1, 31, 12, 0, tzinfo=timezone.utc)


def program():
    """A trivial inline program (the replayed CLI does not run it)."""


def make(fake, progress="text", **kwargs):
    kwargs.setdefault("ttl", timedelta(hours=8))
    return StackLifecycle(StackSettings.build("dev"), owner="alice", command=fake, progress=progress, **kwargs)


def words(fake):
    return [" ".join(c.words) for c in fake.calls]


def test_up_shows_cost_first_then_progress_and_records_the_stack(fake, scenario, capsys):
    fake.script(scenario("up_success"))
    lifecycle = make(fake)
    labels = lifecycle.labels(now=NOW)
    outputs = lifecycle.up(program, labels=labels, planned=7, cost_per_hour=0.4125, model_name="digits")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "up dev: 7 resources planned, estimated $0.41/hour (~$301/month); owner alice, expires 20250131t2000z"
    )
    assert lines[1].endswith("] creating gcp:artifactregistry/repository:Repository models")
    assert lines[-1].startswith("up dev: succeeded — 7 created, 0 updated, 0 deleted, 0 unchanged, 0 failed in ")
    assert len(lines) == 1 + 14 + 1  # cost, a start and an end line per resource, the summary
    assert outputs["endpoint_url"] == "http://34.118.20.7"
    record = lifecycle.records.read("mltoolkit", "dev", lifecycle.settings.backend)
    assert (record.status, record.owner, record.expires, record.model_name) == ("up", "alice", "20250131t2000z", "digits")
    status = lifecycle.status()
    assert status.exists and status.status == "up" and status.resource_count == 12
    assert status.expires == datetime(2025, 1, 31, 20, 0, tzinfo=timezone.utc)


def test_failed_up_is_recorded_and_raised(fake, scenario, capsys):
    fake.script(scenario("up_quota_error"))
    lifecycle = make(fake)
    with pytest.raises(QuotaExceededError):
        lifecycle.up(program, planned=7)
    assert lifecycle.last_progress.result == "failed" and lifecycle.last_progress.failed == 1
    assert lifecycle.records.read("mltoolkit", "dev", lifecycle.settings.backend).status == "failed"
    out = capsys.readouterr().out
    assert "error (gcp:container/cluster:Cluster ml-cluster): googleapi: Error 403: Insufficient regional quota" in out


def test_interrupted_up_leaves_a_stack_that_down_removes(fake, scenario, capsys):
    fake.script(scenario("up_interrupted"), scenario("destroy_after_interrupt"))
    lifecycle = make(fake)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.up(program, planned=7)
    out = capsys.readouterr().out
    assert "up dev: interrupted — 2 created" in out
    assert "Run target.down() to remove them" in out
    assert lifecycle.records.read("mltoolkit", "dev", lifecycle.settings.backend).status == "interrupted"
    status = lifecycle.status()
    assert status.exists and status.update_in_progress and status.resource_count == 6

    before = len(fake.calls)
    assert lifecycle.down() is True
    down_calls = [c.argv[1:] for c in fake.calls[before:] if c.words != ["stack", "select"]]
    assert [a[0] if a[0] != "stack" else " ".join(a[:2]) for a in down_calls] == [
        "stack ls", "destroy", "cancel", "destroy", "stack history", "stack rm",
    ]
    refused, cancel, destroy = (c for c in fake.calls[before:] if c.words in (["destroy"], ["cancel"]))
    assert cancel.argv == ["--non-interactive", "cancel", "--yes", "--stack", "dev"]
    for call in (refused, destroy):
        assert call.flag("--refresh") is True and call.flag("--yes") and call.flag("--skip-preview")
    assert fake.calls[-1].argv == ["--non-interactive", "stack", "rm", "--yes", "dev"]
    assert fake.stacks == {}
    assert lifecycle.records.read("mltoolkit", "dev", lifecycle.settings.backend) is None
    out = capsys.readouterr().out
    assert "releasing the lock left by an interrupted run" in out and "no longer running" in out
    assert "destroy dev: succeeded — 0 created, 0 updated, 2 deleted" in out


def test_down_does_not_break_a_lock_whose_process_still_runs(fake, scenario):
    import os

    fake.script(scenario("up_interrupted"))
    fake.lock_pid = os.getpid()
    lifecycle = make(fake, progress=False)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.up(program)
    with pytest.raises(StackLockedError, match="still running"):
        lifecycle.down()
    assert fake.calls_of("cancel") == [] and "dev" in fake.stacks


def test_down_without_a_stack_is_a_no_op(fake, capsys):
    lifecycle = make(fake)
    assert lifecycle.down() is False
    assert words(fake) == ["stack ls"]
    assert "no such stack" in capsys.readouterr().out


def test_preview_and_refresh(fake, scenario, capsys):
    fake.script(scenario("preview"), scenario("up_success"), scenario("refresh"))
    lifecycle = make(fake)
    assert lifecycle.preview(program) == {"create": 12}
    assert "would be created gcp:container/cluster:Cluster ml-cluster" in capsys.readouterr().out
    lifecycle.up(program)
    lifecycle.refresh(clear_pending_creates=True)
    refresh = fake.calls_of("refresh")[0]
    assert refresh.flag("--clear-pending-creates") is True and refresh.flag("--yes") and refresh.flag("--skip-preview")


def test_passphrase_and_secret_config_never_shown(fake, scenario, capsys, monkeypatch):
    passphrase = "correct-horse-battery-staple-4711"
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
    seen = []
    fake.script(scenario("up_success"), scenario("up_quota_error"))
    lifecycle = make(fake, progress=lambda snapshot, line: seen.append(f"{snapshot!r} {line}"),
                     config={"app:token": ConfigEntry("tok-s3cret-99", secret=True)})
    lifecycle.up(program)
    with pytest.raises(QuotaExceededError) as info:
        lifecycle.up(program)
    shown = "\n".join([
        capsys.readouterr().out, capsys.readouterr().err, str(info.value), repr(info.value), *seen,
        repr(lifecycle), repr(lifecycle.driver), repr(lifecycle.status()), repr(lifecycle.outputs()),
        repr(ConfigEntry("tok-s3cret-99", secret=True)),
    ])
    assert passphrase not in shown and "tok-s3cret-99" not in shown
    # the CLI got the passphrase from the environment it inherits, never from our env mapping
    assert all(passphrase not in str(c.env) for c in fake.calls)
    # the secret config value went to the CLI as --secret and is stored as a secret
    assert fake.stacks["dev"].config["app:token"] == ("tok-s3cret-99", True)
    assert fake.stacks["dev"].history[-1]["config"]["app:token"] == {"secret": True}


def test_generated_passphrase_stays_in_its_file(fake, scenario, capsys):
    fake.script(scenario("up_success"))
    lifecycle = make(fake)
    lifecycle.up(program)
    secret = (lifecycle.settings.state_dir / "passphrase").read_text()
    assert all(secret not in str(c.env) and secret not in " ".join(c.argv) for c in fake.calls)
    assert secret not in capsys.readouterr().out and secret not in repr(lifecycle.outputs())


def test_sweep_lists_and_destroys_only_expired_stacks(fake, scenario, _isolated_home):
    lifecycle = make(fake, progress=False)
    backend = lifecycle.settings.backend
    past, future = "20250131t1100z", "20250131t1300z"
    fake.add_stack("old", resource_count=12, outputs={OUTPUT_OWNER: "bob", OUTPUT_EXPIRES: past})
    fake.add_stack("fresh", resource_count=12, outputs={OUTPUT_OWNER: "bob", OUTPUT_EXPIRES: future})
    fake.add_stack("forever", resource_count=3, outputs={OUTPUT_OWNER: "carol", OUTPUT_EXPIRES: ""})
    fake.add_stack("busy", resource_count=4, locked_by="dave@elsewhere (pid 1) at x",
                   outputs={OUTPUT_OWNER: "dave", OUTPUT_EXPIRES: past})
    fake.add_stack("crashed", resource_count=6)  # interrupted before any output was saved...
    lifecycle.records.write(StackRecord(stack="crashed", project="mltoolkit", backend=backend,
                                        owner="alice", expires=past, status="interrupted"))  # ...but recorded

    listed = lifecycle.sweep(now=NOW)
    assert list(listed["stack"]) == ["busy", "crashed", "old"]
    assert list(listed["action"]) == ["skipped: an update is in progress", "would destroy", "would destroy"]
    assert list(listed["source"]) == ["outputs", "record", "outputs"]
    assert list(listed["owner"]) == ["dave", "alice", "bob"]
    assert fake.calls_of("destroy") == [] and len(fake.stacks) == 5

    fake.script(scenario("destroy"), scenario("destroy"))
    swept = lifecycle.sweep(dry_run=False, now=NOW)
    assert list(swept["action"]) == ["skipped: an update is in progress", "destroyed", "destroyed"]
    assert sorted(fake.stacks) == ["busy", "forever", "fresh"]
    assert [c.flag("--stack") for c in fake.calls_of("destroy")] == ["crashed", "old"]
    assert lifecycle.records.read("mltoolkit", "crashed", backend) is None


def test_with_metadata_exports_after_the_program(monkeypatch):
    import pulumi

    calls = []
    monkeypatch.setattr(pulumi, "export", lambda key, value: calls.append((key, value)))
    wrapped = with_metadata(lambda: calls.append("program"), {OUTPUT_OWNER: "alice", OUTPUT_MODEL: "digits"})
    wrapped()
    assert calls == ["program", (OUTPUT_OWNER, "alice"), (OUTPUT_MODEL, "digits")]


def test_missing_plugins_are_installed_before_up_with_progress(fake, scenario, capsys):
    """The gcp and kubernetes plugins at the SDKs' versions, before the engine starts
    (issue 12.11); an installed one is not installed again."""
    fake.plugins.add(("resource", "kubernetes", "4.34.2"))
    fake.script(scenario("up_success"), scenario("up_success"))
    lifecycle = make(fake)
    lifecycle.up(program, planned=7, plugins={"gcp": "10.2.0", "kubernetes": "4.34.2"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "installing the Pulumi gcp plugin v10.2.0 (once per machine; can take a minute)",
        "installed the Pulumi gcp plugin v10.2.0",
    ]
    installs = fake.calls_of("plugin", "install")
    assert [c.argv[-3:] for c in installs] == [["resource", "gcp", "v10.2.0"]]
    assert words(fake).index("plugin install") < words(fake).index("up")
    lifecycle.up(program, planned=7, plugins={"gcp": "10.2.0", "kubernetes": "4.34.2"})
    assert len(fake.calls_of("plugin", "install")) == 1  # both present now
