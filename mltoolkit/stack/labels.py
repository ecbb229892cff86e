"""Labels every cloud resource carries: who owns it, which stack made it, when it expires.

Google Cloud label keys and values allow lowercase letters, digits, ``_`` and ``-`` (values up
to 63 characters), so the expiry is written ``20250131t1530z`` (UTC, minute precision) and the
owner is lower-cased with anything else replaced by ``-``.
"""

from __future__ import annotations

import getpass
import re
from datetime import datetime, timedelta, timezone
from typing import Mapping

from mltoolkit.errors import SpecError

EXPIRES_FORMAT = "%Y%m%dt%H%Mz"
TTL_ALLOWED = "None, a datetime.timedelta > 0, or a duration such as '90m', '8h', '2d' (m, h, d, w)"
OWNER_ALLOWED = (
    "1-63 lowercase letters, digits, '_' and '-', starting and ending with a letter or digit "
    "(a Google Cloud and Kubernetes label value)"
)
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)
_TTL_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_LABEL_VALUE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
MANAGED_BY = "mltoolkit"


def parse_ttl(ttl: object) -> timedelta | None:
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        if ttl <= timedelta(0):
            raise SpecError("ttl", ttl, TTL_ALLOWED)
        return ttl
    if isinstance(ttl, str):
        match = _TTL.match(ttl)
        if match and float(match.group(1)) > 0:
            return timedelta(**{_TTL_UNITS[match.group(2).lower()]: float(match.group(1))})
    raise SpecError("ttl", ttl, TTL_ALLOWED)


def label_safe(text: str) -> str:
    return _UNSAFE.sub("-", text.lower())[:63].strip("-_")


def check_owner(owner: object) -> str:
    """The owner label: ``owner`` if given (must already be label-safe), else the login name."""
    if owner is None:
        try:
            name = getpass.getuser()
        except (OSError, KeyError):
            name = "unknown"
        return label_safe(name) or "unknown"
    if not isinstance(owner, str) or not _LABEL_VALUE.match(owner):
        raise SpecError("owner", owner, OWNER_ALLOWED)
    return owner


def format_expires(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime(EXPIRES_FORMAT)


def parse_expires(text: object) -> datetime | None:
    """The datetime (UTC) of an ``expires`` label; None if absent or not in our format."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.lower(), EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def resource_labels(
    *, owner: str, stack: str, ttl: timedelta | None, now: datetime | None = None
) -> dict[str, str]:
    """``managed-by``, ``owner``, ``stack`` and, with a TTL, ``expires`` (from ``now``)."""
    labels = {"managed-by": MANAGED_BY, "owner": owner, "stack": label_safe(stack)}
    if ttl is not None:
        start = now if now is not None else datetime.now(timezone.utc)
        # round up to the next minute: the label never says earlier than the TTL allows
        expiry = (start + ttl).replace(second=0, microsecond=0)
        if expiry < start + ttl:
            expiry += timedelta(minutes=1)
        labels["expires"] = format_expires(expiry)
    return labels


# Stack outputs the lifecycle adds to every program, so a sweep can read them from the state
# backend (shared by a team) without the local records of whoever created the stack.
OUTPUT_OWNER = "mltoolkit_owner"
OUTPUT_EXPIRES = "mltoolkit_expires"
OUTPUT_MODEL = "mltoolkit_model_name"

#: labels whose value changes from one ``up()`` to the next (the expiry moves with the clock).
#: They go only where a new value is an in-place label update (the cluster, the bucket, the
#: repository, the Cloud Armor policy) and on the stack outputs — never into a pod template, a
#: node pool's node config or an object's force-new metadata, where a new value would restart
#: every replica, recreate the nodes or re-upload the model.
VOLATILE_LABELS = ("expires",)


def stable_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` without the volatile ones (see ``VOLATILE_LABELS``)."""
    return {k: v for k, v in labels.items() if k not in VOLATILE_LABELS}
