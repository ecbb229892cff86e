"""environment.yml (conda) and pyproject.toml (pip) must name the same packages and bounds."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge spells some Python packages differently from PyPI
CONDA_TO_PYPI = {"python-kubernetes": "kubernetes", "pulumi-python": "pulumi"}
CONDA_ONLY = {"python", "pip", "pulumi"}  # the interpreter, pip, and the Pulumi CLI binary


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return dict(_split(r) for r in requirements)


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found: dict[str, str] = {}
    for entry in env["dependencies"]:
        entries = entry["pip"] if isinstance(entry, dict) else [entry]
        for requirement in entries:
            name, spec = _split(requirement)
            if isinstance(entry, str) and name in CONDA_ONLY and name not in CONDA_TO_PYPI:
                continue
            found[CONDA_TO_PYPI.get(name, name)] = spec
    return found


def test_environment_and_pyproject_name_the_same_packages():
    assert _environment() == _pyproject()


def test_environment_carries_the_pulumi_cli():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "pulumi" in env["dependencies"]
    assert "conda-forge" in env["channels"]
