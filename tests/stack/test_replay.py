"""The replaying CLI must refuse what the real CLI would refuse, or tests would prove nothing."""

import pytest

from mltoolkit.stack.replay import ReplayPulumiCommand, Scenario, UnexpectedCall, _split


def run(fake, *args, env=None, cwd=None):
    return fake.run(list(args), cwd or ".", env or {})


def test_argv_parsing():
    words, flags, positional = _split(
        ["--non-interactive", "config", "set-all", "--stack", "dev", "--plaintext", "a:b=1", "--secret", "c:d=2",
         "--plaintext", "e:f=3"]
    )
    assert words == ["config", "set-all"] and positional == []
    assert flags == {"--non-interactive": True, "--stack": "dev", "--plaintext": ["a:b=1", "e:f=3"], "--secret": ["c:d=2"]}
    words, flags, positional = _split(["up", "--client=127.0.0.1:5", "--exec-kind", "auto.inline", "--yes"])
    assert (words, flags["--client"], flags["--exec-kind"], flags["--yes"]) == (["up"], "127.0.0.1:5", "auto.inline", True)
    assert _split(["stack", "rm", "--yes", "dev"])[2] == ["dev"]
    assert _split(["cancel", "--yes", "--", "dev"])[2] == ["dev"]


def test_unknown_commands_and_flags_fail_loudly(tmp_path):
    fake = ReplayPulumiCommand()
    with pytest.raises(UnexpectedCall, match="unknown command"):
        run(fake, "stack", "unselect")
    with pytest.raises(UnexpectedCall, match=r"unknown flag\(s\) \['--force'\]"):
        run(fake, "up", "--force", "--stack", "dev")
    assert fake.calls[-1].argv[0] == "--non-interactive"  # inserted as PulumiCommand.run does


def test_engine_commands_need_yes_a_live_client_and_a_script(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: mltoolkit\nruntime: python\n")
    fake = ReplayPulumiCommand()
    fake.add_stack("dev")
    env = {"PULUMI_CONFIG_PASSPHRASE": "x"}
    with pytest.raises(UnexpectedCall, match="without --yes"):
        run(fake, "up", "--skip-preview", "--stack", "dev", "--exec-kind", "auto.local", env=env, cwd=str(tmp_path))
    with pytest.raises(UnexpectedCall, match="no language runtime answers"):
        run(fake, "up", "--yes", "--skip-preview", "--stack", "dev", "--exec-kind", "auto.inline",
            "--client=127.0.0.1:9", env=env, cwd=str(tmp_path))
    with pytest.raises(UnexpectedCall, match="no scripted scenario"):
        run(fake, "up", "--yes", "--skip-preview", "--stack", "dev", "--exec-kind", "auto.local", env=env, cwd=str(tmp_path))
    with pytest.raises(UnexpectedCall, match="no Pulumi.yaml"):
        run(fake, "stack", "ls", "--json", cwd=str(tmp_path / "elsewhere"))


def test_scenario_loading(scenario):
    up = scenario("up_success")
    assert up.command == "up" and up.exit_code == 0 and "kubeconfig" in up.secret_outputs
    assert up.stdout.startswith("Updating (dev):") and "\n" in up.stdout
    assert Scenario.from_dict({"command": "up", "stdout": ["a", "b"], "unknown": 1}).stdout == "a\nb"
