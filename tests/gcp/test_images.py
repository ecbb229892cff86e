"""The serving image up() builds (issue 12.1): context from the installed package, pinned
libraries, content-hash tag, skipped when the tag exists, before any pod needs it."""

import subprocess
import sys
from importlib import metadata

import pytest

from mltoolkit.gcp import images
from tests.gcp.conftest import make_cluster


def test_registry_url():
    assert images.registry_url(make_cluster()) == "us-central1-docker.pkg.dev/my-project/mltoolkit"


def test_the_context_comes_from_the_installed_package_without_a_source_tree(tmp_path):
    context = images.build_context({})
    assert "mltoolkit/serving/__main__.py" in context.files and "mltoolkit/__init__.py" in context.files
    assert "pyproject.toml" not in context.files  # a pip-installed user has none
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in context.files)
    dockerfile = context.files["Dockerfile"].decode()
    assert f"FROM python:{sys.version_info.major}.{sys.version_info.minor}-slim" in dockerfile
    assert "COPY mltoolkit /opt/mltoolkit/mltoolkit" in dockerfile and "USER 10001" in dockerfile
    # the balancer's haproxy data plane: HAProxy installed as root, in the layer with pip, lists removed
    (run,) = [step for step in dockerfile.split("\n") if step.startswith("RUN ")]
    assert run.startswith(
        "RUN apt-get update && apt-get install -y --no-install-recommends haproxy && rm -rf /var/lib/apt/lists/*"
    )
    assert dockerfile.index("RUN apt-get") < dockerfile.index("USER 10001")
    assert dockerfile.count("RUN ") == 1
    assert "pip install -r /tmp/requirements.txt" in dockerfile.split("COPY mltoolkit")[0]
    # what a copy of the package (as site-packages holds it) gives is the same context
    copy = tmp_path / "site-packages" / "mltoolkit"
    for name, content in context.files.items():
        if name.startswith("mltoolkit/"):
            (copy.parent / name).parent.mkdir(parents=True, exist_ok=True)
            (copy.parent / name).write_bytes(content)
    assert images.build_context({}, package_root=copy).digest == context.digest


def test_the_image_pins_the_models_libraries_and_leaves_notebook_packages_out():
    recorded = {"scikit-learn": "1.5.2", "numpy": "2.1.3", "joblib": "1.4.2", "xgboost": "2.1.1"}
    context = images.build_context(recorded)
    requirements = context.files["requirements.txt"].decode().splitlines()
    for name, version in recorded.items():
        assert f"{name}=={version}" in requirements  # the versions that pickled the model
    assert f"aiohttp=={metadata.version('aiohttp')}" in requirements  # the server's own, pinned too
    assert all("==" in line for line in requirements)
    names = {line.split("==")[0] for line in requirements}
    assert not names & {"pandas", "matplotlib", "ipywidgets", "jupyterlab"}
    # without a record: this environment's versions (where the model was pickled)
    unrecorded = images.build_context({}).requirements
    assert unrecorded["scikit-learn"] == metadata.version("scikit-learn")


def test_the_server_in_the_image_imports_no_notebook_package(tmp_path):
    """What the image leaves out, the server must not import."""
    code = ("import sys, mltoolkit.serving.__main__, mltoolkit.serving.server; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'matplotlib', 'ipywidgets'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_tag_is_the_content_hash():
    a = images.build_context({"numpy": "2.1.3"})
    assert a.digest == images.build_context({"numpy": "2.1.3"}).digest  # same content, same tag
    b = images.build_context({"numpy": "2.1.2"})
    assert a.digest != b.digest  # another pin: another tag, never a rebuild under the old one
    assert a.image("r.example/p/repo") == f"r.example/p/repo/mltoolkit-serving:{a.digest}"
    assert len(a.digest) == 16


def test_the_build_is_skipped_when_the_tag_exists():
    command = images.build_command("r.example/p/repo/mltoolkit-serving:0123", "/tmp/ctx dir", "my-project", "us-east1")
    check, build = command.split(" || ")
    assert check.startswith("gcloud artifacts docker images describe r.example/p/repo/mltoolkit-serving:0123")
    assert build.startswith("gcloud builds submit '/tmp/ctx dir' --project my-project --region us-east1")
    assert "--tag r.example/p/repo/mltoolkit-serving:0123" in build


def test_write_context_writes_every_file(tmp_path):
    context = images.build_context({})
    directory = images.write_context(context, tmp_path / "ctx")
    assert (directory / "Dockerfile").read_bytes() == context.files["Dockerfile"]
    assert (directory / "mltoolkit" / "serving" / "app.py").is_file()
