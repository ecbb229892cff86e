"""The local target: a deployment as real replica and balancer processes on this machine."""

from mltoolkit.local.cleanup import StoppedProcess
from mltoolkit.local.errors import LocalTargetError
from mltoolkit.local.target import LocalTarget

__all__ = ["LocalTarget", "LocalTargetError", "StoppedProcess"]
