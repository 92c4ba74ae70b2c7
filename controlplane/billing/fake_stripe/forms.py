"""Stripe's request encoding, decoded: ``application/x-www-form-urlencoded`` with bracketed paths
(``items[0][price]=price_x&metadata[plan]=pro``) into nested dicts and lists."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_TOKEN = re.compile(r"\[([^\[\]]*)\]")
MAX_FIELDS = 1000


class FormError(ValueError):
    """The body is not a Stripe-encoded form."""


def _path(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not head or "]" in head:
        raise FormError(f"invalid parameter name {key[:40]!r}")
    tokens = [head]
    if rest:
        rest = "[" + rest
        if _TOKEN.sub("", rest):
            raise FormError(f"invalid parameter name {key[:40]!r}")
        tokens.extend(_TOKEN.findall(rest))
    return tokens


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def decode_form(body: bytes) -> dict[str, Any]:
    """Decode a Stripe form body. Raises :class:`FormError` on anything malformed."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise FormError("the body is not UTF-8") from None
    if len(pairs) > MAX_FIELDS:
        raise FormError("too many parameters")
    root: dict[str, Any] = {}
    for key, value in pairs:
        tokens = _path(key)
        node = root
        for token in tokens[:-1]:
            child = node.setdefault(token, {})
            if not isinstance(child, dict):
                raise FormError(f"parameter {key[:40]!r} conflicts with another")
            node = child
        node[tokens[-1]] = value
    result: dict[str, Any] = _listify(root)
    return result


__all__ = ["FormError", "decode_form"]
