"""The toolkit's exceptions: one base class, and a spec error that names the field."""

from __future__ import annotations

from typing import Any


class MltoolkitError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class SpecError(MltoolkitError, ValueError):
    """An invalid value in a spec, raised before anything starts.

    ``field`` is the dotted path of the field (``"DeploymentSpec.cpu"``), ``value`` the value
    given, ``allowed`` what would have been accepted.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: {value!r} is not allowed; expected {allowed}")
