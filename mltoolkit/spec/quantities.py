"""Kubernetes resource quantities: CPU ("500m", "1", "0.5") and memory ("2Gi", "512Mi", "1G")."""

from __future__ import annotations

import re

from mltoolkit.errors import SpecError

_CPU = re.compile(r"^(?:(\d+)m|(\d+(?:\.\d{1,3})?))$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_FACTORS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}

CPU_ALLOWED = "a Kubernetes CPU quantity > 0 such as '500m' (millicores), '1' or '0.5' (cores)"
MEMORY_ALLOWED = (
    "a Kubernetes memory quantity > 0 such as '512Mi', '2Gi', '1G' or a byte count "
    "(suffixes Ki, Mi, Gi, Ti, k, M, G, T)"
)


def cpu_millicores(value: str | int | float, field: str = "cpu") -> int:
    """Parse a CPU quantity into whole millicores; raise SpecError naming ``field`` if invalid."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(field, value, CPU_ALLOWED)
    match = _CPU.match(str(value).strip())
    if not match:
        raise SpecError(field, value, CPU_ALLOWED)
    millis = int(match.group(1)) if match.group(1) else round(float(match.group(2)) * 1000)
    if millis <= 0:
        raise SpecError(field, value, CPU_ALLOWED)
    return millis


def memory_bytes(value: str | int, field: str = "memory") -> int:
    """Parse a memory quantity into bytes; raise SpecError naming ``field`` if invalid."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SpecError(field, value, MEMORY_ALLOWED)
    match = _MEMORY.match(str(value).strip())
    if not match:
        raise SpecError(field, value, MEMORY_ALLOWED)
    amount = float(match.group(1)) * _MEMORY_FACTORS[match.group(2)]
    if amount < 1:
        raise SpecError(field, value, MEMORY_ALLOWED)
    return int(amount)
