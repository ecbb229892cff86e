"""The Automation API layer: stack lifecycle, live progress, and Pulumi errors as toolkit errors.

Only :mod:`mltoolkit.stack.automation` imports ``pulumi.automation``, and only when a stack is
first driven: this package imports without the optional Pulumi SDK.
"""

from mltoolkit.stack.errors import (
    ApiNotEnabledError,
    GcpExtraMissingError,
    GoogleCredentialsError,
    NoEndpointError,
    NotDeployedError,
    PendingOperationsError,
    PermissionDeniedError,
    PulumiCliError,
    PulumiCliIncompatibleError,
    PulumiCliMissingError,
    PulumiCliTooOldError,
    QuotaExceededError,
    StackError,
    StackLockedError,
    StackNotFoundError,
    StackOperationError,
)
from mltoolkit.stack.lifecycle import StackLifecycle, StackStatus
from mltoolkit.stack.progress import ProgressModel, ProgressSnapshot
from mltoolkit.stack.settings import StackSettings
from mltoolkit.stack.values import ConfigEntry, SecretOutput, StackInfo

__all__ = [
    "ApiNotEnabledError",
    "ConfigEntry",
    "GcpExtraMissingError",
    "GoogleCredentialsError",
    "NoEndpointError",
    "NotDeployedError",
    "PendingOperationsError",
    "PermissionDeniedError",
    "ProgressModel",
    "ProgressSnapshot",
    "PulumiCliError",
    "PulumiCliIncompatibleError",
    "PulumiCliMissingError",
    "PulumiCliTooOldError",
    "QuotaExceededError",
    "SecretOutput",
    "StackError",
    "StackInfo",
    "StackLifecycle",
    "StackLockedError",
    "StackNotFoundError",
    "StackOperationError",
    "StackSettings",
    "StackStatus",
]
