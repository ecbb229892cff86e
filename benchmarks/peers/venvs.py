"""One virtualenv per peer under ``benchmarks/.venvs/NAME`` (git-ignored), built from
``benchmarks/peers/requirements-NAME.txt`` and reused while that file is unchanged.

Peers get their own environments because they cannot share one: MLServer 1.7.1 caps FastAPI below
0.116 and pins OpenTelemetry differently from BentoML, and none of them is a dependency of
mltoolkit. A peer that cannot be installed is reported, not fatal: ``PeerUnavailable`` says why.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent
VENVS_DIR = PEERS_DIR.parent / ".venvs"
STAMP = "requirements.sha256"


class PeerUnavailable(RuntimeError):
    """A peer's environment cannot be built (or its server cannot be found in it)."""


def requirements_file(peer: str) -> Path:
    return PEERS_DIR / f"requirements-{peer}.txt"


def requirements_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def base_python() -> str:
    """The interpreter that made the running virtualenv (peers use the same Python version)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_is_current(venv: Path, requirements: Path) -> bool:
    stamp = venv / STAMP
    return (
        (venv / "bin" / "python").exists()
        and stamp.exists()
        and stamp.read_text().strip() == requirements_digest(requirements)
    )


def ensure_venv(peer: str, venvs_dir: Path = VENVS_DIR, log=print) -> Path:
    """The peer's virtualenv directory, created or rebuilt first if its requirements changed."""
    requirements = requirements_file(peer)
    if not requirements.exists():
        raise PeerUnavailable(f"no requirements file {requirements}")
    venv = venvs_dir / peer
    if venv_is_current(venv, requirements):
        return venv
    log(f"building {venv} from {requirements.name} (once; reused while that file is unchanged)")
    if venv.exists():
        shutil.rmtree(venv)
    venvs_dir.mkdir(parents=True, exist_ok=True)
    install_log = venvs_dir / f"{peer}.install.log"
    with open(install_log, "wb") as out:
        for step in (
            [base_python(), "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-r", str(requirements)],
        ):
            try:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise PeerUnavailable(f"{' '.join(step[:3])}: {exc}") from exc
            if done.returncode != 0:
                tail = install_log.read_text(errors="replace").strip().splitlines()[-5:]
                raise PeerUnavailable(
                    f"installing {requirements.name} failed (exit {done.returncode}; "
                    f"log {install_log}): " + " | ".join(tail)
                )
    (venv / STAMP).write_text(requirements_digest(requirements) + "\n")
    return venv
