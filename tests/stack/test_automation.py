"""The Automation API driven end to end over the replaying CLI (argv checked, events streamed)."""

import os
import stat

import pytest
import yaml

from mltoolkit.stack.automation import (
    ConfigEntry,
    SecretOutput,
    StackDriver,
    check_version,
    make_command,
    split_command_error,
)
from mltoolkit.stack.errors import (
    GoogleCredentialsError,
    PendingOperationsError,
    PermissionDeniedError,
    PulumiCliIncompatibleError,
    PulumiCliMissingError,
    PulumiCliTooOldError,
    QuotaExceededError,
    StackLockedError,
    StackNotFoundError,
)
from mltoolkit.stack.passphrase import passphrase_env
from mltoolkit.stack.replay import ReplayPulumiCommand
from mltoolkit.stack.settings import StackSettings

CONFIG = {
    "gcp:project": ConfigEntry("my-proj"),
    "gcp:zone": ConfigEntry("us-central1-a"),
    "app:token": ConfigEntry("tok-123", secret=True),
}


def program():
    """A trivial inline program (the replayed CLI does not run it)."""


@pytest.fixture
def settings():
    settings = StackSettings.build("dev")
    settings.prepare()
    return settings


@pytest.fixture
def driver(settings, fake):
    env = {"PULUMI_BACKEND_URL": settings.backend, **passphrase_env(settings.state_dir)}
    return StackDriver(settings, env=env, config=CONFIG, command=fake)


def test_preview_creates_the_stack_sets_config_and_streams_events(driver, fake, settings, scenario):
    fake.script(scenario("preview"))
    received = []
    changes = driver.preview(program, received.append)
    assert changes == {"create": 12}
    assert [c.words for c in fake.calls] == [
        ["stack", "select"], ["stack", "init"], ["config", "set-all"], ["preview"],
    ]
    select, init, config, preview = fake.calls
    assert select.argv == ["--non-interactive", "stack", "select", "--stack", "dev"]
    assert init.argv == ["--non-interactive", "stack", "init", "dev", "--secrets-provider", "passphrase"]
    assert config.argv == [
        "--non-interactive", "config", "set-all", "--stack", "dev",
        "--plaintext", "gcp:project=my-proj", "--plaintext", "gcp:zone=us-central1-a",
        "--secret", "app:token=tok-123",
    ]
    assert fake.stacks["dev"].config["app:token"] == ("tok-123", True)
    assert preview.flag("--exec-kind") == "auto.inline"
    assert preview.flag("--client").startswith("127.0.0.1:")
    assert preview.flag("--event-log").startswith("tcp://127.0.0.1:")
    assert preview.flag("--stack") == "dev"
    # every call runs in the persistent workspace, against our backend, with the passphrase *file*
    for call in fake.calls:
        assert call.cwd == str(settings.work_dir)
        assert call.env["PULUMI_BACKEND_URL"] == settings.backend
        assert set(call.env) >= {"PULUMI_CONFIG_PASSPHRASE_FILE"} and "PULUMI_CONFIG_PASSPHRASE" not in call.env
    project = yaml.safe_load((settings.work_dir / "Pulumi.yaml").read_text())
    assert project["name"] == "mltoolkit" and project["backend"]["url"] == settings.backend
    # the events arrived, converted, in order
    assert len(received) == len(fake.events_sent) > 20
    assert received[0].kind == "prelude" and received[-1].kind == "cancel"


def test_up_returns_outputs_with_secrets_hidden(driver, fake, scenario):
    fake.script(scenario("up_success"))
    outputs = driver.up(program)
    assert outputs["endpoint_url"] == "http://34.118.20.7"
    assert isinstance(outputs["kubeconfig"], SecretOutput)
    assert outputs["kubeconfig"].value.startswith("apiVersion: v1")
    assert "certificate-authority-data" not in repr(outputs) and "[secret]" in repr(outputs)
    up = fake.calls_of("up")[0]
    assert up.flag("--yes") is True and up.flag("--skip-preview") is True
    assert up.flag("--refresh") is None
    # events are always listened to, even without a display: failures are diagnosed from them
    assert up.flag("--event-log").startswith("tcp://127.0.0.1:")
    after = [c.argv[1:] for c in fake.calls[fake.calls.index(up) + 1 :]]
    assert after == [
        ["stack", "output", "--json", "--stack", "dev"],
        ["stack", "output", "--json", "--show-secrets", "--stack", "dev"],
        ["stack", "history", "--json", "--show-secrets", "--page-size", "1", "--page", "1", "--stack", "dev"],
    ]
    [info] = driver.list_stacks()
    assert (info.name, info.resource_count, info.update_in_progress) == ("dev", 12, False)
    assert info.last_update is not None and info.last_update.tzinfo is not None
    assert driver.outputs()["cluster_name"] == "ml-cluster"


@pytest.mark.parametrize(
    "name, error_type, text",
    [
        ("up_quota_error", QuotaExceededError, "quota CPUS (regional quota) needs 24"),
        ("up_permission_denied", PermissionDeniedError, "missing permission container.clusters.create"),
        ("up_no_credentials", GoogleCredentialsError, "gcloud auth application-default login"),
        ("up_pending_operations", PendingOperationsError, "interrupted while creating"),
    ],
)
def test_failing_up_becomes_a_toolkit_error(driver, fake, scenario, name, error_type, text):
    fake.script(scenario(name))
    events = []
    with pytest.raises(error_type) as info:
        driver.up(program, events.append)
    assert text in str(info.value)
    assert events[-1].kind == "cancel"  # all events were delivered before the error surfaced
    assert driver.last_diagnostics and fake.stacks["dev"].history[-1]["result"] == "failed"


def test_locked_stack_held_by_a_live_process(driver, fake):
    fake.add_stack("dev", locked_by=f"bob@{os.uname().nodename} (pid {os.getpid()}) at 2025-01-31T15:30:00.000Z")
    with pytest.raises(StackLockedError) as info:
        driver.up(program)
    assert info.value.pid_alive is True
    assert "still running" in str(info.value)
    assert not fake.calls_of("up")[0].flag("--refresh")


def test_destroy_refreshes_first_then_remove(driver, fake, scenario):
    fake.script(scenario("up_success"), scenario("destroy"))
    driver.up(program)
    changes = driver.destroy()
    assert changes == {"delete": 12}
    destroy = fake.calls_of("destroy")[0]
    assert destroy.flag("--refresh") is True and destroy.flag("--yes") is True
    assert destroy.flag("--skip-preview") is True and destroy.flag("--exec-kind") == "auto.inline"
    driver.remove()
    assert fake.calls[-1].argv == ["--non-interactive", "stack", "rm", "--yes", "dev"]
    assert fake.stacks == {}
    with pytest.raises(StackNotFoundError, match="no stack 'dev'"):
        driver.destroy()


def test_stack_with_resources_is_not_removed(driver, fake, scenario):
    fake.script(scenario("up_success"))
    driver.up(program)
    with pytest.raises(Exception, match="still has resources"):
        driver.remove()
    assert "dev" in fake.stacks


def test_older_cli_streams_events_through_the_log_file(settings, scenario):
    fake = ReplayPulumiCommand(version="3.200.0").script(scenario("preview"))
    driver = StackDriver(settings, env=passphrase_env(settings.state_dir), command=fake)
    received = []
    assert driver.preview(program, received.append) == {"create": 12}
    log = fake.calls_of("preview")[0].flag("--event-log")
    assert not log.startswith("tcp://") and log.endswith("eventlog.txt")
    assert len(received) == len(fake.events_sent)


def test_no_passphrase_in_reach_fails_like_the_cli(settings, fake, scenario):
    driver = StackDriver(settings, env={}, command=fake)
    with pytest.raises(Exception, match="passphrase must be set"):
        driver.preview(program)


def test_missing_cli_explains_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a real lookup that finds no `pulumi`
    with pytest.raises(PulumiCliMissingError) as info:
        make_command()
    text = str(info.value)
    assert "conda env create -f environment.yml" in text and "https://get.pulumi.com" in text


def test_missing_cli_surfaces_on_first_use(monkeypatch, tmp_path, settings):
    monkeypatch.setenv("PATH", str(tmp_path))
    driver = StackDriver(settings, env={})
    with pytest.raises(PulumiCliMissingError):
        driver.up(program)


def _cli_printing(tmp_path, version):
    script = tmp_path / "pulumi"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_old_cli_is_refused_with_upgrade_steps(monkeypatch, tmp_path):
    _cli_printing(tmp_path, "v3.100.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PulumiCliTooOldError) as info:
        make_command()
    assert (info.value.found, info.value.minimum) == ("3.100.0", "3.181.0")
    assert "conda update -c conda-forge pulumi" in str(info.value)


def test_cli_of_a_newer_major_version(monkeypatch, tmp_path):
    _cli_printing(tmp_path, "v4.0.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PulumiCliIncompatibleError, match="pip install -U pulumi"):
        make_command()


def test_our_minimum_holds_even_when_the_sdk_check_is_off(monkeypatch, tmp_path, settings, scenario):
    _cli_printing(tmp_path, "v3.150.0")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", "true")
    with pytest.raises(PulumiCliTooOldError):
        make_command()
    old_fake = ReplayPulumiCommand(version="3.150.0").script(scenario("preview"))
    with pytest.raises(PulumiCliTooOldError):
        StackDriver(settings, env={}, command=old_fake).preview(program)
    assert old_fake.calls == []
    check_version(None)  # an unparsable version is the SDK's business


def test_split_command_error():
    text = "\n code: 255\n stdout: Updating (dev):\nDuration: 1s\n stderr: error: boom"
    assert split_command_error(text) == (255, "Updating (dev):\nDuration: 1s", "error: boom")
    assert split_command_error("weird") == (None, "", "weird")


def test_only_the_automation_module_imports_the_automation_api():
    import ast
    from pathlib import Path

    import mltoolkit

    importers = []
    for path in Path(mltoolkit.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "pulumi.automation" or n.startswith("pulumi.automation.") for n in names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["automation.py"]
