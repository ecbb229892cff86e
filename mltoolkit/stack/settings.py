"""Where a stack's state lives and what it is called, validated before anything runs.

State goes to a local directory by default (``$MLTOOLKIT_HOME/pulumi/state``, i.e.
``~/.mltoolkit/pulumi/state``), or to a Cloud Storage bucket (``gs://bucket/prefix``) that a team
shares. Pulumi's project files (``Pulumi.yaml``, ``Pulumi.<stack>.yaml`` with the stack's
encryption salt) live in a workspace directory under the state dir, so a new kernel finds them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mltoolkit.errors import SpecError

BACKEND_ALLOWED = (
    "None (a local directory under $MLTOOLKIT_HOME/pulumi), a directory path, "
    "'file:///absolute/path', or 'gs://bucket[/prefix]' (a Cloud Storage bucket for teams)"
)
STACK_ALLOWED = (
    "1-63 characters of lowercase letters, digits and '-', starting and ending with a letter or "
    "digit (the name also becomes a Google Cloud label value)"
)
PROJECT_ALLOWED = "1-100 characters of letters, digits, '_', '.' and '-'"
_STACK = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PROJECT = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def default_state_dir() -> Path:
    return Path(os.environ.get("MLTOOLKIT_HOME", Path.home() / ".mltoolkit")) / "pulumi"


def check_stack_name(value: object, field: str = "stack") -> str:
    if not isinstance(value, str) or not _STACK.match(value):
        raise SpecError(field, value, STACK_ALLOWED)
    return value


def backend_url(backend: object, state_dir: Path) -> str:
    """Normalise ``backend`` into a Pulumi backend URL (``file://...`` or ``gs://...``)."""
    if backend is None:
        return (state_dir / "state").resolve().as_uri()
    if isinstance(backend, os.PathLike):
        return Path(backend).expanduser().resolve().as_uri()
    if not isinstance(backend, str) or not backend.strip():
        raise SpecError("backend", backend, BACKEND_ALLOWED)
    text = backend.strip()
    if text.startswith("gs://"):
        bucket = text[len("gs://") :].split("/", 1)[0]
        if not _BUCKET.match(bucket):
            raise SpecError("backend", backend, BACKEND_ALLOWED + "; the bucket name is not valid")
        return text.rstrip("/")
    if text.startswith("file://"):
        path = text[len("file://") :]
        if path.startswith("~"):
            path = str(Path(path).expanduser())
        if not path.startswith("/"):
            raise SpecError("backend", backend, BACKEND_ALLOWED + "; file:// needs an absolute path")
        return Path(path).resolve().as_uri()
    if "://" in text:
        raise SpecError("backend", backend, BACKEND_ALLOWED)
    return Path(text).expanduser().resolve().as_uri()


def local_backend_dir(url: str) -> Path | None:
    """The directory of a ``file://`` backend (None for a bucket)."""
    if url.startswith("file://"):
        return Path(url[len("file://") :])
    return None


@dataclass(frozen=True)
class StackSettings:
    """Names and places of one stack: ``project``/``stack`` in the backend at ``backend``."""

    stack: str
    backend: str
    state_dir: Path
    project: str = "mltoolkit"

    @classmethod
    def build(
        cls,
        stack: object,
        backend: object = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        project: object = "mltoolkit",
    ) -> StackSettings:
        name = check_stack_name(stack)
        if not isinstance(project, str) or not _PROJECT.match(project):
            raise SpecError("project", project, PROJECT_ALLOWED)
        if state_dir is not None and not isinstance(state_dir, (str, os.PathLike)):
            raise SpecError("state_dir", state_dir, "a directory path or None")
        directory = Path(state_dir).expanduser().resolve() if state_dir is not None else default_state_dir()
        return cls(stack=name, backend=backend_url(backend, directory), state_dir=directory, project=project)

    @property
    def work_dir(self) -> Path:
        """Pulumi.yaml and Pulumi.<stack>.yaml for this project (kept between sessions)."""
        return self.state_dir / "workspaces" / self.project

    @property
    def records_dir(self) -> Path:
        return self.state_dir / "records"

    def prepare(self) -> None:
        """Create the local directories (the one side effect of this module)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.records_dir.mkdir(parents=True, exist_ok=True)
        local = local_backend_dir(self.backend)
        if local is not None:
            local.mkdir(parents=True, exist_ok=True)
