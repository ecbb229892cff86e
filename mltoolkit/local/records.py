"""On-disk records of running local deployments, so a crashed kernel's processes can be found.

One JSON file per deployment under the state directory, written atomically whenever a process
starts, restarts or the deployment comes up, and removed by ``down()``. A record names its
owner (the Python process that called ``up()``) by pid and create time, so ``cleanup()`` can
tell a live owner from a dead one even after the pid has been reused.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

RECORD_SUFFIX = ".json"
_DEPLOYMENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")  # '<model name>-<8 hex digits>'
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def check_deployment_id(deployment_id: object) -> str:
    """``deployment_id`` if it is a plain name (lowercase letters, digits and '-'), which keeps
    its record and log folder inside the state folder; ``ValueError`` otherwise."""
    if not isinstance(deployment_id, str) or not _DEPLOYMENT_ID.match(deployment_id):
        raise ValueError(
            f"deployment id {deployment_id!r} is not a plain name (1-100 lowercase letters, "
            "digits and '-', starting with a letter or digit)"
        )
    return deployment_id


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the owner only; tighten it if it exists."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def default_state_dir() -> Path:
    """``$MLTOOLKIT_HOME/local`` (MLTOOLKIT_HOME defaults to ~/.mltoolkit)."""
    home = os.environ.get("MLTOOLKIT_HOME") or str(Path.home() / ".mltoolkit")
    return Path(home) / "local"


def new_deployment_id(model_name: str) -> str:
    return f"{model_name}-{uuid.uuid4().hex[:8]}"


@dataclass
class ProcessRecord:
    """One started process: ``pid`` and ``create_time`` identify it even if the pid is reused."""

    role: str
    name: str
    node: str | None
    port: int
    command: list[str]
    log_path: str
    pid: int | None = None
    create_time: float | None = None
    restarts: int = 0


@dataclass
class DeploymentRecord:
    deployment_id: str
    owner_pid: int
    owner_create_time: float
    model_name: str
    endpoint_url: str | None = None
    processes: list[ProcessRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentRecord:
        processes = [ProcessRecord(**p) for p in data.get("processes", [])]
        return cls(**{**data, "processes": processes})


class RecordStore:
    """The record files of one state directory."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)

    def path(self, deployment_id: str) -> Path:
        return self._inside(f"{check_deployment_id(deployment_id)}{RECORD_SUFFIX}")

    def log_dir(self, deployment_id: str) -> Path:
        return self._inside(check_deployment_id(deployment_id))

    def _inside(self, name: str) -> Path:
        """``state_dir / name``, refused (``ValueError``) unless it resolves to a direct child
        of the state folder (a symlink pointing elsewhere counts as outside)."""
        path = self.state_dir / name
        if path.resolve().parent != self.state_dir.resolve():
            raise ValueError(f"{path} resolves outside the state folder {self.state_dir}")
        return path

    def log_dirs(self) -> list[str]:
        """The deployment ids that have a log folder (directories named like deployment ids)."""
        if not self.state_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.state_dir.iterdir()
            if _DEPLOYMENT_ID.match(p.name) and p.is_dir() and not p.is_symlink()
        )

    def write(self, record: DeploymentRecord) -> Path:
        private_dir(self.state_dir)
        path = self.path(record.deployment_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(record.to_dict(), indent=2))
        os.replace(tmp, path)
        return path

    def read(self, deployment_id: str) -> DeploymentRecord | None:
        try:
            return DeploymentRecord.from_dict(json.loads(self.path(deployment_id).read_text()))
        except FileNotFoundError:
            return None

    def remove(self, deployment_id: str) -> None:
        self.path(deployment_id).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[DeploymentRecord]:
        """Every readable record; files that are not records of ours are skipped, and so is a
        record whose id is not a plain name or does not match its file's name."""
        if not self.state_dir.is_dir():
            return
        for path in sorted(self.state_dir.glob(f"*{RECORD_SUFFIX}")):
            try:
                record = DeploymentRecord.from_dict(json.loads(path.read_text()))
                if self.path(record.deployment_id) != path:
                    continue
            except (OSError, ValueError, TypeError):
                continue
            yield record
