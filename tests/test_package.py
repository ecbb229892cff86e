"""The public API: every name in __all__ resolves, and the server processes import light."""

import subprocess
import sys

import mltoolkit


def test_every_public_name_resolves():
    for name in mltoolkit.__all__:
        assert getattr(mltoolkit, name) is not None, name


def test_the_model_server_does_not_import_notebook_libraries():
    code = (
        "import sys, mltoolkit.serving.server, mltoolkit.balancer.cli; "
        "print(sorted(m for m in ('pandas', 'matplotlib', 'ipywidgets', 'pulumi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
