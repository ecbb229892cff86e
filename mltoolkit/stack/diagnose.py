"""Turn a failed Pulumi command into one of the toolkit's errors (pure: text in, error out).

Inputs are what a failed command leaves behind: the SDK's error class name, the CLI's stdout
and stderr, and the error/warning diagnostics collected from the engine events (which name the
resource each message is about). Google Cloud's messages are matched by their stable parts:
``googleapi: Error 403: Insufficient regional quota to satisfy request: resource "CPUS": ...``,
``Required "container.clusters.create" permission(s) for "projects/p"``,
``Permission 'x.y.z' denied on resource '...'``, ``could not find default credentials``, ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from mltoolkit.stack.errors import (
    ApiNotEnabledError,
    GoogleCredentialsError,
    PendingOperationsError,
    PermissionDeniedError,
    PermissionProblem,
    QuotaExceededError,
    QuotaShortfall,
    StackError,
    StackLockedError,
    StackNotFoundError,
    StackOperationError,
)
from mltoolkit.stack.events import STACK_TYPE, resource_label, strip_colors, summarize_message, urn_type


@dataclass(frozen=True)
class Diagnostic:
    """An engine diagnostic: ``urn`` of the resource it is about ("" for the whole run)."""

    urn: str
    severity: str
    message: str

    @property
    def resource(self) -> str:
        return resource_label(self.urn)


@dataclass(frozen=True)
class LockHolder:
    who: str
    pid: int | None
    host: str | None


_QUOTA_PATTERNS = (
    # googleapi (GKE, Compute): Insufficient regional quota to satisfy request: resource "CPUS":
    # request requires '12.0' and is short '4.0'. project has a quota of '8.0' with '8.0' available.
    re.compile(
        r"Insufficient (?P<scope>\w+ )?quota to satisfy request(?: for resource)?:\s*"
        r"(?:resource )?\"(?P<metric>[A-Z0-9_]+)\"[:.]?\s*(?:The )?request requires "
        r"'(?P<requested>[\d.]+)' and is short '(?P<short>[\d.]+)'\.\s*"
        r"(?:project has a quota of|The \w+ quota is) '(?P<limit>[\d.]+)' with "
        r"'(?P<available>[\d.]+)' available",
        re.IGNORECASE,
    ),
    # Compute API: Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1.
    re.compile(
        r"Quota '(?P<metric>[A-Z0-9_]+)' exceeded\.\s+Limit: (?P<limit>[\d.]+)"
        r"(?: in (?P<scope>region|zone|project)\b[^.]*)?",
        re.IGNORECASE,
    ),
)
_QUOTA_HINT = re.compile(r"QUOTA_EXCEEDED|RESOURCE_EXHAUSTED|quota exceeded|Insufficient \w* ?quota", re.I)
_PROJECT = re.compile(r"project[=/ ](?P<project>[a-z][-a-z0-9]{4,28}[a-z0-9])\b")

_PERMISSION_PATTERNS = (
    re.compile(r"Required '?\"?(?P<perm>[\w.]+)\"?'? permission\(s\) for \"?(?P<on>[^\"\s]+)\"?"),
    re.compile(r"Permission '(?P<perm>[\w.]+)' denied on resource '(?P<on>[^']+)'"),
    re.compile(r"Permission \"(?P<perm>[\w.]+)\" denied on resource \"(?P<on>[^\"]+)\""),
)
_PERMISSION_HINT = re.compile(
    r"Error 403|PERMISSION_DENIED|IAM_PERMISSION_DENIED|does not have permission|"
    r"Permission denied|permission\(s\)|forbidden",
    re.IGNORECASE,
)
_API_DISABLED = re.compile(
    r"(?P<api>[\w .]+?) API has not been used in project (?P<project>[\w-]+) before or it is "
    r"disabled|SERVICE_DISABLED",
)
_SERVICE_NAME = re.compile(r"apis/api/(?P<service>[\w.-]+\.googleapis\.com)")
_CREDENTIALS = re.compile(
    r"could not find default credentials|failed to load application credentials|"
    r"No credentials loaded|application default credentials|invalid_grant|"
    r"Reauthentication (?:is )?(?:failed|required)|oauth2: cannot fetch token",
    re.IGNORECASE,
)
_ORIGINAL_ERROR = re.compile(r"Original error: (.+)$")
_LOCK_TEXT = re.compile(
    r"the stack is currently locked by|Another update is currently in progress", re.IGNORECASE
)
_LOCK_HOLDER = re.compile(r"created by (?P<who>[^\s@]+)@(?P<host>\S+) \(pid (?P<pid>\d+)\)")
_PENDING_TEXT = re.compile(r"pending operations", re.IGNORECASE)
_PENDING_LINE = re.compile(r"\*\s+(?P<urn>urn:pulumi:\S+?),? interrupted while (?P<op>\w+)")
_NOT_FOUND = re.compile(r"no stack named .* found", re.IGNORECASE)
_GENERIC_FAILURE = re.compile(r"^(?:update|preview|destroy|refresh) failed$", re.IGNORECASE)
_ERROR_LINE = re.compile(r"^\s*error:\s*(?P<text>.+)$", re.MULTILINE)


def _float(text: str | None) -> float | None:
    return float(text) if text else None


def parse_quota(diagnostic: Diagnostic) -> list[QuotaShortfall]:
    """Every quota shortfall named in one diagnostic (empty if it is not a quota error)."""
    found: list[QuotaShortfall] = []
    project_match = _PROJECT.search(diagnostic.message)
    project = project_match.group("project") if project_match else None
    for pattern in _QUOTA_PATTERNS:
        for match in pattern.finditer(diagnostic.message):
            groups = match.groupdict()
            found.append(
                QuotaShortfall(
                    resource=diagnostic.resource,
                    metric=groups["metric"],
                    scope=(groups.get("scope") or "").strip().lower(),
                    requested=_float(groups.get("requested")),
                    short_by=_float(groups.get("short")),
                    limit=_float(groups.get("limit")),
                    available=_float(groups.get("available")),
                    project=project,
                )
            )
    if not found and _QUOTA_HINT.search(diagnostic.message):
        found.append(QuotaShortfall(resource=diagnostic.resource, metric="(unnamed)", project=project))
    return found


def parse_permission(diagnostic: Diagnostic) -> list[PermissionProblem]:
    """Permission denials named in one diagnostic (empty if it is not about permissions)."""
    problems = [
        PermissionProblem(
            resource=diagnostic.resource, permission=m.group("perm"), on=m.group("on").rstrip(".,"),
            text=m.group(0),
        )
        for pattern in _PERMISSION_PATTERNS
        for m in pattern.finditer(diagnostic.message)
    ]
    if not problems and _PERMISSION_HINT.search(diagnostic.message) and not _QUOTA_HINT.search(
        diagnostic.message
    ):
        problems.append(
            PermissionProblem(
                resource=diagnostic.resource, permission=None, on=None,
                text=summarize_message(diagnostic.message),
            )
        )
    return problems


def parse_lock_holder(text: str) -> LockHolder | None:
    match = _LOCK_HOLDER.search(text)
    if match is None:
        return None
    return LockHolder(who=match.group("who"), pid=int(match.group("pid")), host=match.group("host"))


def parse_pending(text: str) -> list[str]:
    return [
        f"{resource_label(m.group('urn'))} (interrupted while {m.group('op')})"
        for m in _PENDING_LINE.finditer(text)
    ]


def _error_diagnostics(diagnostics: Sequence[Diagnostic]) -> list[Diagnostic]:
    errors = [d for d in diagnostics if d.severity == "error"]
    specific = [
        d for d in errors
        if not (urn_type(d.urn) in ("", STACK_TYPE) and _GENERIC_FAILURE.match(d.message.strip()))
    ]
    return specific or errors


def _stderr_errors(stderr: str, stdout: str) -> list[str]:
    lines = [m.group("text").strip() for m in _ERROR_LINE.finditer(strip_colors(stderr))]
    if not lines:
        lines = [m.group("text").strip() for m in _ERROR_LINE.finditer(strip_colors(stdout))]
    return [line for line in lines if not _GENERIC_FAILURE.match(line)]


def classify_failure(
    *,
    operation: str,
    stack: str,
    backend: str,
    error_kind: str,
    stdout: str,
    stderr: str,
    diagnostics: Sequence[Diagnostic] = (),
    lock_holder_alive: bool | None = None,
) -> StackError:
    """The toolkit error for a failed Pulumi command (first matching rule wins).

    ``error_kind`` is the class name of the SDK's CommandError (``ConcurrentUpdateError``,
    ``StackNotFoundError``, ...). ``lock_holder_alive`` says whether the process holding a
    stack lock is still running (None: unknown) and only shapes the advice.
    """
    everything = "\n".join([stderr, stdout, *(d.message for d in diagnostics)])
    if error_kind == "ConcurrentUpdateError" or _LOCK_TEXT.search(stderr):
        holder = parse_lock_holder(everything)
        who = f"{holder.who}@{holder.host} pid {holder.pid}" if holder else None
        return StackLockedError(stack, who, lock_holder_alive)
    if error_kind == "StackNotFoundError" or _NOT_FOUND.search(stderr):
        return StackNotFoundError(stack, backend)

    errors = _error_diagnostics(diagnostics)
    if _PENDING_TEXT.search(everything) and (
        not errors or any("already exists" in d.message or "409" in d.message for d in errors)
    ):
        return PendingOperationsError(stack, parse_pending(everything))
    if _CREDENTIALS.search(everything):
        messages = [summarize_message(d.message, limit=2000) for d in errors if _CREDENTIALS.search(d.message)]
        detail = messages[0] if messages else ""
        original = _ORIGINAL_ERROR.search(detail)
        return GoogleCredentialsError(summarize_message(original.group(1) if original else detail))

    shortfalls = [s for d in errors for s in parse_quota(d)]
    if shortfalls:
        return QuotaExceededError(operation, shortfalls)
    disabled = [d for d in errors if _API_DISABLED.search(d.message)]
    if disabled:
        services = sorted({m.group("service") for d in disabled for m in _SERVICE_NAME.finditer(d.message)})
        projects = [m.group("project") for d in disabled for m in _API_DISABLED.finditer(d.message) if m.group("project")]
        return ApiNotEnabledError(operation, services or ["(see the Cloud Console)"], projects[0] if projects else None)
    problems = [p for d in errors for p in parse_permission(d)]
    if problems:
        return PermissionDeniedError(operation, problems)

    details = [f"{d.resource}: {summarize_message(d.message)}" for d in errors]
    if not details:
        details = _stderr_errors(stderr, stdout)
    return StackOperationError(operation, stack, details)
