from pathlib import Path

import pytest

from mltoolkit.errors import SpecError
from mltoolkit.stack.settings import StackSettings, backend_url, local_backend_dir


def test_default_backend_is_a_directory_under_mltoolkit_home(_isolated_home):
    settings = StackSettings.build("dev")
    assert settings.state_dir == _isolated_home / "pulumi"
    assert settings.backend == (_isolated_home / "pulumi" / "state").as_uri()
    assert settings.work_dir == _isolated_home / "pulumi" / "workspaces" / "mltoolkit"
    settings.prepare()
    assert local_backend_dir(settings.backend).is_dir() and settings.work_dir.is_dir()


@pytest.mark.parametrize(
    "given, expected",
    [
        ("gs://team-state/ml", "gs://team-state/ml"),
        ("gs://team-state/", "gs://team-state"),
        ("file:///srv/pulumi", "file:///srv/pulumi"),
        ("/srv/pulumi", "file:///srv/pulumi"),
        (Path("/srv/pulumi"), "file:///srv/pulumi"),
    ],
)
def test_backends_accepted(given, expected, tmp_path):
    assert backend_url(given, tmp_path) == expected


@pytest.mark.parametrize("given", ["s3://bucket", "https://api.pulumi.com", "gs://X!", "file://relative/path", "", 3])
def test_backends_rejected_with_what_is_allowed(given, tmp_path):
    with pytest.raises(SpecError) as info:
        backend_url(given, tmp_path)
    assert info.value.field == "backend" and "gs://bucket" in str(info.value)


@pytest.mark.parametrize("name", ["Dev", "dev_1", "-dev", "", "a" * 64, None])
def test_stack_names_rejected(name):
    with pytest.raises(SpecError, match="stack"):
        StackSettings.build(name)


def test_project_and_state_dir_checked(tmp_path):
    with pytest.raises(SpecError, match="project"):
        StackSettings.build("dev", project="my project")
    with pytest.raises(SpecError, match="state_dir"):
        StackSettings.build("dev", state_dir=42)
    assert StackSettings.build("dev", state_dir=tmp_path).state_dir == tmp_path.resolve()
