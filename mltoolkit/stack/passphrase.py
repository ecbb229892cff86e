"""The passphrase that encrypts a stack's secrets (kubeconfig, secret config values).

Pulumi's passphrase secrets provider reads ``PULUMI_CONFIG_PASSPHRASE`` or
``PULUMI_CONFIG_PASSPHRASE_FILE``. If the user set either, it is used as is (a team sharing a
``gs://`` backend must share it). Otherwise a random passphrase is generated once and kept in
``<state_dir>/passphrase`` with permissions 0600, and only the *file's path* is handed to the
CLI, so the passphrase itself never sits in an environment mapping, a repr or a log line.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Mapping

PASSPHRASE_VAR = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE_VAR = "PULUMI_CONFIG_PASSPHRASE_FILE"


def passphrase_file(state_dir: Path) -> Path:
    return state_dir / "passphrase"


def ensure_passphrase_file(path: Path) -> Path:
    """Create ``path`` with a fresh random passphrase (mode 0600) unless it exists; make sure an
    existing one is readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    return path


def passphrase_env(state_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables to pass to the CLI: {} when the user already set a passphrase
    (the CLI inherits it), else ``{PULUMI_CONFIG_PASSPHRASE_FILE: <generated file>}``."""
    env = os.environ if environ is None else environ
    if PASSPHRASE_VAR in env or env.get(PASSPHRASE_FILE_VAR):
        return {}
    return {PASSPHRASE_FILE_VAR: str(ensure_passphrase_file(passphrase_file(state_dir)))}
