"""The local target's error."""

from __future__ import annotations

from mltoolkit.errors import MltoolkitError


class LocalTargetError(MltoolkitError):
    """Something went wrong starting, supervising or stopping local processes."""
