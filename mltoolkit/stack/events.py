"""Engine events in the toolkit's own small shape, and helpers for Pulumi URNs.

The Pulumi SDK hands ``on_event`` an ``EngineEvent`` (a union with exactly one field set);
:func:`from_engine_event` turns it into a :class:`StackEvent`, reading attributes only, so the
progress model and the error translation never depend on the SDK's classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

_COLOR = re.compile(r"<\{%[^%]*%\}>")

STACK_TYPE = "pulumi:pulumi:Stack"


def strip_colors(text: str) -> str:
    """Remove Pulumi's colour directives (``<{%fg 1%}>``, ``<{%reset%}>``)."""
    return _COLOR.sub("", text)


def summarize_message(message: str, limit: int = 400) -> str:
    """One line from a provider message: colours, 'N error(s) occurred' wrappers, bullets and
    the JSON 'Details:' blocks removed, whitespace collapsed, cut at ``limit`` characters."""
    text = strip_colors(message).split("\nDetails:")[0]
    text = re.sub(r"\d+ errors? occurred:\s*", "", text)
    text = re.sub(r"^\s*\*\s*", "", text, flags=re.MULTILINE)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def urn_type(urn: str) -> str:
    """``urn:pulumi:dev::proj::parent$gcp:container/cluster:Cluster::ml`` → the resource type."""
    parts = urn.split("::")
    if len(parts) < 4:
        return ""
    return parts[2].split("$")[-1]


def urn_name(urn: str) -> str:
    parts = urn.split("::")
    return parts[-1] if len(parts) >= 4 else urn


def resource_label(urn: str) -> str:
    """A short human name for a resource: ``gcp:container/cluster:Cluster ml-cluster``."""
    if not urn:
        return "the stack"
    kind = urn_type(urn)
    return f"{kind} {urn_name(urn)}" if kind else urn


@dataclass(frozen=True)
class StackEvent:
    """One engine event. ``kind`` is one of: prelude, resource_pre, resource_done,
    resource_failed, diagnostic, summary, cancel, stdout, other.

    ``op`` is the step's operation (create, update, delete, same, replace, refresh, ...);
    ``custom`` is False for component resources (groupings without a cloud object of their own).
    """

    kind: str
    sequence: int = 0
    timestamp: int = 0
    urn: str = ""
    resource_type: str = ""
    op: str = ""
    custom: bool | None = None
    severity: str = ""
    message: str = ""
    resource_changes: Mapping[str, int] = field(default_factory=dict)
    planning: bool = False

    @property
    def name(self) -> str:
        return urn_name(self.urn)


def _op_value(op: Any) -> str:
    return str(getattr(op, "value", op) or "")


def _step(kind: str, base: dict[str, Any], payload: Any) -> StackEvent:
    meta = payload.metadata
    state = meta.new or meta.old
    # the CLI omits "custom" when false (components); unknown only without any state
    custom = bool(getattr(state, "custom", False)) if state is not None else None
    return StackEvent(
        kind=kind,
        urn=meta.urn,
        resource_type=meta.type or urn_type(meta.urn),
        op=_op_value(meta.op),
        custom=custom,
        planning=bool(getattr(payload, "planning", False)),
        **base,
    )


def from_engine_event(event: Any) -> StackEvent:
    """Convert a ``pulumi.automation.events.EngineEvent`` (duck-typed) into a StackEvent."""
    base = {"sequence": int(event.sequence or 0), "timestamp": int(event.timestamp or 0)}
    if event.resource_pre_event is not None:
        return _step("resource_pre", base, event.resource_pre_event)
    if event.res_outputs_event is not None:
        return _step("resource_done", base, event.res_outputs_event)
    if event.res_op_failed_event is not None:
        return _step("resource_failed", base, event.res_op_failed_event)
    if event.diagnostic_event is not None:
        diag = event.diagnostic_event
        urn = diag.urn or ""
        return StackEvent(
            kind="diagnostic",
            urn=urn,
            resource_type=urn_type(urn),
            severity=diag.severity or "",
            message=strip_colors(diag.message or "").strip(),
            **base,
        )
    if event.summary_event is not None:
        changes = {_op_value(k): int(v) for k, v in (event.summary_event.resource_changes or {}).items()}
        return StackEvent(kind="summary", resource_changes=changes, **base)
    if event.prelude_event is not None:
        return StackEvent(kind="prelude", **base)
    if event.cancel_event is not None:
        return StackEvent(kind="cancel", **base)
    if event.stdout_event is not None:
        return StackEvent(kind="stdout", message=strip_colors(event.stdout_event.message or ""), **base)
    return StackEvent(kind="other", **base)
