"""scripts/gke_smoke.sh: skips clearly without the cloud tools; the no-change check bites."""

import os
import subprocess
from pathlib import Path

from mltoolkit.gcp.smoke import missing_prerequisites, unexpected_changes

ROOT = Path(__file__).resolve().parents[2]


def test_without_cli_or_credentials_the_smoke_run_skips_and_says_why(tmp_path):
    import shutil

    tools = tmp_path / "bin"  # the shell's own tools only: no pulumi, gcloud or auth plugin
    tools.mkdir()
    for tool in ("dirname",):
        (tools / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(tools), "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
           "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT)), "MLTOOLKIT_HOME": str(tmp_path / "home"),
           "PYTHON": os.environ.get("PYTHON_FOR_TESTS", __import__("sys").executable)}
    result = subprocess.run([shutil.which("bash"), str(ROOT / "scripts" / "gke_smoke.sh")], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("SKIPPED: the GKE smoke run needs pulumi on PATH")
    for needed in ("gcloud on PATH", "gke-gcloud-auth-plugin on PATH", "application-default credentials",
                   "MLTOOLKIT_GCP_PROJECT"):
        assert needed in line
    assert line.endswith("Nothing was created.")
    assert not (tmp_path / "home").exists()


def test_prerequisites_met_when_everything_is_there(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("pulumi", "gcloud", "gke-gcloud-auth-plugin"):
        (tools / tool).write_text("#!/bin/sh\n")
        (tools / tool).chmod(0o755)
    adc = tmp_path / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir()
    adc.write_text("{}")
    env = {"PATH": str(tools), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "MLTOOLKIT_GCP_PROJECT": "my-proj"}
    assert missing_prerequisites(env) == []


def test_a_second_up_counts_as_unchanged_only_with_nothing_but_same():
    assert unexpected_changes({"same": 31}) == {}
    assert unexpected_changes({"same": 30, "update": 1}) == {"update": 1}
    assert unexpected_changes({"same": 29, "replace": 2, "create": 0}) == {"replace": 2}
