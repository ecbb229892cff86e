"""On-disk records of running local deployments, so a crashed kernel's processes can be found.

One JSON file per deployment under the state directory, written atomically whenever a process
starts, restarts or the deployment comes up, and removed by ``down()``. A record names its
owner (the Python process that called ``up()``) by pid and create time, so ``cleanup()`` can
tell a live owner from a dead one even after the pid has been reused.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

RECORD_SUFFIX = ".json"


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
        return self.state_dir / f"{deployment_id}{RECORD_SUFFIX}"

    def log_dir(self, deployment_id: str) -> Path:
        return self.state_dir / deployment_id

    def write(self, record: DeploymentRecord) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.path(record.deployment_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record.to_dict(), indent=2))
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
        """Every readable record; files that are not records of ours are skipped."""
        if not self.state_dir.is_dir():
            return
        for path in sorted(self.state_dir.glob(f"*{RECORD_SUFFIX}")):
            try:
                yield DeploymentRecord.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue
