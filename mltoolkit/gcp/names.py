"""Names Google Cloud accepts for resources the program names itself (pure functions).

Most Google Cloud resource names are RFC 1035 labels: 1-63 lowercase letters, digits and '-',
a letter first, no '-' last. A name built from a cluster name and a model name (each up to 40
characters) can be longer; ``resource_name`` keeps it within the limit with a short hash of the
whole, so two long names still differ.
"""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 63
_RFC1035 = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")


def is_valid(name: str) -> bool:
    return bool(_RFC1035.match(name))


def resource_name(*parts: str, limit: int = MAX_LENGTH) -> str:
    """``'-'.join(parts)`` if it fits in ``limit`` characters, else its head and an 8-character
    hash of the whole."""
    name = "-".join(p.strip("-") for p in parts if p)
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"
