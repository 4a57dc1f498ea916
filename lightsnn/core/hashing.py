"""A stable short hash of JSON-like data: the same content gives the same hex string on every machine."""
from __future__ import annotations

import hashlib
import json


def stable_hash(obj, length: int = 12) -> str:
    """``length`` hex digits of the SHA-256 of ``obj`` as compact, key-sorted JSON (other types via str)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
