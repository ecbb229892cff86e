"""benchmarks/peers/venvs.py: one pinned virtualenv per peer, rebuilt only when its file changes."""

import pytest

from peers.venvs import (
    STAMP,
    PeerUnavailable,
    ensure_venv,
    requirements_digest,
    requirements_file,
    venv_is_current,
)


def test_every_peer_pins_its_versions_and_mlserver_pins_uvloop_below_0_22():
    for peer in ("mlserver", "bentoml", "fastapi"):
        lines = [line.split("#")[0].strip() for line in requirements_file(peer).read_text().splitlines()]
        packages = [line for line in lines if line]
        assert packages and all("==" in line for line in packages), (peer, packages)
        # the model file is shared: the same scikit-learn as mltoolkit's environment
        import sklearn

        assert f"scikit-learn=={sklearn.__version__}" in packages
    assert "uvloop==0.21.0" in requirements_file("mlserver").read_text()  # SeldonIO/MLServer#2286


def test_a_venv_is_current_only_with_its_python_and_the_digest_of_the_same_file(tmp_path):
    requirements = tmp_path / "requirements-x.txt"
    requirements.write_text("numpy==2.0.0\n")
    venv = tmp_path / "x"
    (venv / "bin").mkdir(parents=True)
    assert not venv_is_current(venv, requirements)  # no python yet
    (venv / "bin" / "python").write_text("")
    assert not venv_is_current(venv, requirements)  # no stamp: never finished installing
    (venv / STAMP).write_text(requirements_digest(requirements) + "\n")
    assert venv_is_current(venv, requirements)
    requirements.write_text("numpy==2.1.0\n")
    assert not venv_is_current(venv, requirements)  # the pins changed: rebuild


def test_an_unknown_peer_is_unavailable_with_the_reason(tmp_path):
    with pytest.raises(PeerUnavailable, match="no requirements file .*requirements-triton.txt"):
        ensure_venv("triton", venvs_dir=tmp_path)
