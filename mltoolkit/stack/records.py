"""A local JSON record per stack: owner, expiry, model name and the last known status.

Written *before* ``up`` starts, so a stack whose ``up`` was interrupted (and whose outputs
were therefore never saved) can still be found, attributed and swept by its expiry.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path


@dataclass
class StackRecord:
    stack: str
    project: str
    backend: str
    owner: str
    expires: str | None = None
    model_name: str | None = None
    status: str = "creating"  # creating, up, failed, interrupted, destroying, removed
    updated_at: str = ""

    @property
    def key(self) -> str:
        return record_key(self.project, self.stack, self.backend)


def record_key(project: str, stack: str, backend: str) -> str:
    digest = hashlib.sha256(backend.encode()).hexdigest()[:10]
    return f"{project}--{stack}--{digest}"


class RecordStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def write(self, record: StackRecord) -> None:
        record.updated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(record.key)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
        tmp.replace(path)

    def read(self, project: str, stack: str, backend: str) -> StackRecord | None:
        path = self._path(record_key(project, stack, backend))
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        known = {f.name for f in fields(StackRecord)}
        try:
            return StackRecord(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None

    def remove(self, project: str, stack: str, backend: str) -> None:
        self._path(record_key(project, stack, backend)).unlink(missing_ok=True)
