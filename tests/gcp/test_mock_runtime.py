import asyncio

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import Mocks

from mltoolkit.gcp.mock_runtime import plain, run_program


class EchoMocks(Mocks):
    """State = inputs, plus an ``answer`` output the program reads back."""

    def new_resource(self, args):
        return f"{args.name}-id", {**args.inputs, "answer": 42}

    def call(self, args):
        raise NotImplementedError(args.token)


class Box(pulumi.ComponentResource):
    def __init__(self, name, size, opts=None):
        super().__init__("test:index:Box", name, None, opts)
        self.bucket = pulumi.CustomResource(
            "test:index:Thing", f"{name}-thing", {"size": size, "answer": None}, pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"size": size})


def program_of(name, size):
    def program():
        box = Box(name, size)
        pulumi.export("answer", box.bucket.answer)
        pulumi.export("token", pulumi.Output.secret("s3cret"))
        pulumi.export("size", size)

    return program


def test_records_resources_parents_and_outputs():
    result = run_program(program_of("one", 5), EchoMocks())
    thing = result.named("one-thing")
    assert thing.type == "test:index:Thing"
    assert thing.parent_name == "one" and thing.parent_type == "test:index:Box"
    assert result.named("one").parent_name == ""  # directly under the stack
    assert thing.inputs == {"size": 5}
    assert isinstance(thing.inputs["size"], int)  # 5.0 on the wire, an int again here
    assert result.outputs["size"] == 5
    assert result.outputs["answer"] == 42  # a mocked provider output, read back: preview=False
    assert result.outputs["token"] == "s3cret" and result.secret_outputs == {"token"}
    assert {"size": 5} in result.component_outputs.values()


def test_runs_as_an_update_not_a_preview():
    """With preview=True an output the mocks do not return would be unknown and apply would not run."""
    seen = {}

    def program():
        seen["dry_run"] = pulumi.runtime.is_dry_run()
        box = Box("real", 1)
        unreturned = pulumi.Output.all(box.bucket.urn, box.bucket.id).apply(lambda values: "applied")
        pulumi.export("applied", unreturned)

    result = run_program(program, EchoMocks())
    assert seen["dry_run"] is False
    assert result.outputs["applied"] == "applied"


def test_two_runs_in_one_process_see_only_their_own_resources():
    first = run_program(program_of("first", 1), EchoMocks())
    second = run_program(program_of("second", 2), EchoMocks())
    assert [r.name for r in first.resources] == ["first", "first-thing"]
    assert [r.name for r in second.resources] == ["second", "second-thing"]
    assert second.outputs["size"] == 2


def test_runs_inside_an_already_running_event_loop():
    async def notebook_cell():
        # a Jupyter kernel runs cells inside its event loop
        return run_program(program_of("looped", 3), EchoMocks())

    result = asyncio.run(notebook_cell())
    assert result.named("looped-thing").inputs == {"size": 3}


def test_leaves_no_pulumi_settings_behind():
    root, monitor = pulumi_settings.get_root_resource(), pulumi_settings.SETTINGS.monitor
    run_program(program_of("clean", 1), EchoMocks())
    assert pulumi_settings.get_root_resource() is root
    assert pulumi_settings.SETTINGS.monitor is monitor


def test_runs_next_to_a_test_that_set_its_own_mocks():
    """A caller's own set_mocks (and root stack) is neither used nor disturbed by a run."""
    outer = EchoMocks()
    asyncio.set_event_loop(asyncio.new_event_loop())  # set_mocks registers a stack: it needs a loop
    pulumi.runtime.set_mocks(outer, project="outer", stack="outer", preview=False)
    outer_monitor = pulumi_settings.SETTINGS.monitor
    outer_root = pulumi_settings.get_root_resource()
    try:
        result = run_program(program_of("inner", 4), EchoMocks())
        assert result.named("inner-thing").urn.startswith("urn:pulumi:plan::mltoolkit::")
        assert pulumi_settings.SETTINGS.monitor is outer_monitor
        assert pulumi_settings.get_root_resource() is outer_root
        assert outer_root.outputs == {}  # the run's exports went to its own stack
    finally:
        pulumi_settings.reset_options()
        asyncio.get_event_loop().close()
        asyncio.set_event_loop(None)


def test_a_failing_program_raises_and_the_next_run_works():
    def broken():
        Box("half", 1)
        raise RuntimeError("program bug")

    with pytest.raises(RuntimeError, match="program bug"):
        run_program(broken, EchoMocks())
    assert run_program(program_of("after", 1), EchoMocks()).named("after-thing").inputs == {"size": 1}


def test_plain_unwraps_secrets_assets_and_floats(tmp_path):
    path = tmp_path / "m.joblib"
    path.write_bytes(b"x")
    secrets = []
    value = {
        "a": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "hidden"},
        "b": [1.0, 1.5],
        "c": pulumi.FileAsset(str(path)),
    }
    assert plain(value, secrets=secrets) == {"a": "hidden", "b": [1, 1.5], "c": {"asset": "file", "path": str(path)}}
    assert secrets == ["a"]
