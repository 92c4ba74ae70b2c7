"""Canonical JSON bytes and their content hash (the config hash stored in machine metadata).

Canonical = UTF-8, keys sorted, compact separators, no trailing newline. Same dict → same bytes → same
hash, whatever order the dict was built in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(content: bytes) -> str:
    """``sha256:<hex>`` of the bytes."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def pretty_json(value: Any) -> str:
    """Human-readable form (sorted keys, indented) for display only; never hashed."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)


__all__ = ["canonical_json", "content_hash", "pretty_json"]
