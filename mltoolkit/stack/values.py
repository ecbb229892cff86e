"""Plain values the stack layer hands around (no Pulumi import): config entries, secret
outputs, stack summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ConfigEntry:
    """A stack configuration value; ``secret=True`` stores it encrypted and never shows it."""

    value: str
    secret: bool = False

    def __repr__(self) -> str:
        shown = "[secret]" if self.secret else repr(self.value)
        return f"ConfigEntry({shown}, secret={self.secret})"


class SecretOutput:
    """A secret stack output: ``.value`` has it, ``repr``/``str`` never show it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "[secret]"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretOutput) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class StackInfo:
    """One line of ``pulumi stack ls``."""

    name: str
    resource_count: int | None
    last_update: datetime | None
    update_in_progress: bool | None
    url: str | None = None
