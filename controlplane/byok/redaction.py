"""Redaction of a provider key (and anything shaped like one) from provider answers.

Providers echo keys back, fully or in part ("Incorrect API key provided: sk-proj-****abcd",
"xa***"). Everything that leaves :mod:`controlplane.byok` built from a provider's answer (the
verdict's detail, the body preview kept for ``unknown`` verdicts, log fields) goes through
:func:`redact_key`: the key itself, any 8-character fragment of it, masked echoes and every
key-shaped string known to :mod:`controlplane.redaction` are replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import re

from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.redaction import MASK, redact_text

#: Fragments of the key at least this long are removed (shorter ones are ordinary text).
FRAGMENT_LEN = 8
#: Longest provider text kept in a verdict (detail) or preview.
PREVIEW_CHARS = 300

# Masked echoes such as "sk-proj-****abcd", "xa***", "sk-…wxyz".
_MASKED_ECHO = re.compile(
    r"[A-Za-z0-9_\-]{2,}\*{2,}[A-Za-z0-9_\-*]*"
    r"|\b(?:sk|xai|gsk|AIza|eyJ)[A-Za-z0-9_\-]*(?:…|\.{3})[A-Za-z0-9_\-*]*"
)
# Long unbroken runs of key alphabet characters with at least one digit: tokens, never prose.
_LONG_TOKEN = re.compile(r"(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{32,}")


def _strip_fragments(text: str, secret: str) -> str:
    if len(secret) < FRAGMENT_LEN:
        return text.replace(secret, MASK) if secret else text
    grams = {secret[i : i + FRAGMENT_LEN] for i in range(len(secret) - FRAGMENT_LEN + 1)}
    covered = bytearray(len(text))
    for i in range(len(text) - FRAGMENT_LEN + 1):
        if text[i : i + FRAGMENT_LEN] in grams:
            covered[i : i + FRAGMENT_LEN] = b"\x01" * FRAGMENT_LEN
    if not any(covered):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def redact_key(text: str, key: ProviderKeyValue | None = None) -> str:
    """``text`` without ``key``, fragments of it, masked key echoes or key-shaped strings."""
    if not text:
        return text
    if key is not None and key:
        secret = key.reveal()
        while secret in text:
            text = text.replace(secret, MASK)
        text = _strip_fragments(text, secret)
    text = redact_text(text)
    text = _MASKED_ECHO.sub(MASK, text)
    return _LONG_TOKEN.sub(MASK, text)


def preview(text: str, key: ProviderKeyValue | None = None, limit: int = PREVIEW_CHARS) -> str:
    """A short, single-line, redacted preview of ``text`` (redacted first, then cut)."""
    flat = " ".join(redact_key(text, key).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = ["FRAGMENT_LEN", "PREVIEW_CHARS", "preview", "redact_key"]
