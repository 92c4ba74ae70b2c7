"""Redaction of a provider key (and anything shaped like one) from provider answers.

Providers echo keys back, fully or in part ("Incorrect API key provided: sk-proj-****abcd",
"xa***", "sk-…wxyz", and for keys without a prefix, such as Mistral's or Cohere's, the first seven
and last four characters: "AbCdEfG...wxyz"). Everything that leaves :mod:`controlplane.byok` built
from a provider's answer (the verdict's detail, the body preview kept for ``unknown`` verdicts, log
fields) goes through :func:`redact_key`, in this order:

1. the key itself;
2. masked echoes (:data:`_MASKED_ECHO`), as a whole: the visible head and tail next to the mask
   are key pieces too short to be recognised as fragments, so they must go with it;
3. any :data:`FRAGMENT_LEN`-character fragment of the key, in any letter case;
4. every key-shaped string known to :mod:`controlplane.redaction`, and long token-like runs.

Every pattern starts only where a run of key characters starts, so redaction stays linear in the
text's length; :func:`preview` also looks at a bounded head of the text only.
"""

from __future__ import annotations

import re

from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.redaction import MASK, redact_text

#: Fragments of the key at least this long are removed (shorter ones are ordinary text).
FRAGMENT_LEN = 8
#: Longest provider text kept in a verdict (detail) or preview.
PREVIEW_CHARS = 300
#: How much of a provider's text :func:`preview` reads, as a multiple of its limit.
_HEAD_FACTOR = 8

_K = r"[A-Za-z0-9_\-]"  # the alphabet of key characters
_START = r"(?<![A-Za-z0-9_\-])"  # the start of a run of key characters
_ELLIPSIS = r"(?:…|\.{3})"

# Masked echoes of a key, removed whole (head, mask and tail).
_MASKED_ECHO = re.compile(
    "|".join(
        (
            rf"{_START}{_K}{{2,}}\*{{2,}}[A-Za-z0-9_\-*]*",  # xa***, sk-proj-****abcd, xa***ZQ
            rf"{_START}{_K}?\*{{2,}}{_K}{{2,}}",  # ****abcd, x**ab
            rf"{_START}{_K}*{_ELLIPSIS}{_K}{{2,}}",  # sk-…wxyz, AbCdEfG...wxyz (no prefix), ...wxyz
            rf"{_START}(?:sk|xai|gsk|AIza|eyJ){_K}*{_ELLIPSIS}",  # sk-…, xai-... (no tail)
            # a key-like head (a digit, "_", "-" or inner capital) before an ellipsis: Ab3dEfG...
            rf"{_START}(?={_K}*(?:[\d_\-]|[a-z][A-Z])){_K}{{5,}}{_ELLIPSIS}",
        )
    )
)
# Long unbroken runs of key alphabet characters with at least one digit: tokens, never prose.
_LONG_TOKEN = re.compile(rf"{_START}(?={_K}*\d){_K}{{32,}}")
_TRAILING_RUN = re.compile(rf"{_K}+\Z")


def _strip_fragments(text: str, secret: str) -> str:
    if len(secret) < FRAGMENT_LEN:
        return text.replace(secret, MASK) if secret else text
    # Case-insensitive: a provider may echo the key upper-cased (lower() keeps ASCII lengths;
    # if it changes the length of some other text, compare as-is).
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text
    low_secret = secret.lower()
    grams = {low_secret[i : i + FRAGMENT_LEN] for i in range(len(secret) - FRAGMENT_LEN + 1)}
    grams |= {secret[i : i + FRAGMENT_LEN] for i in range(len(secret) - FRAGMENT_LEN + 1)}
    covered = bytearray(len(text))
    for i in range(len(text) - FRAGMENT_LEN + 1):
        if lowered[i : i + FRAGMENT_LEN] in grams or text[i : i + FRAGMENT_LEN] in grams:
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
    """``text`` without ``key``, masked key echoes, fragments of the key or key-shaped strings."""
    if not text:
        return text
    secret = key.reveal() if key is not None and key else ""
    if secret:
        while secret in text:
            text = text.replace(secret, MASK)
    text = _MASKED_ECHO.sub(MASK, text)  # before fragments: an echo's head and tail go with it
    if secret:
        text = _strip_fragments(text, secret)
    text = redact_text(text)
    return _LONG_TOKEN.sub(MASK, text)


def preview(text: str, key: ProviderKeyValue | None = None, limit: int = PREVIEW_CHARS) -> str:
    """A short, single-line, redacted preview of ``text`` (redacted first, then cut).

    Only a bounded head of ``text`` is read; if it had to be cut, the run of key characters it was
    cut in is dropped, so no piece of a token split at the cut can survive."""
    head_len = max(limit, 1) * _HEAD_FACTOR
    if len(text) > head_len:
        text = _TRAILING_RUN.sub("", text[:head_len]) + "…"
    flat = " ".join(redact_key(text, key).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = ["FRAGMENT_LEN", "PREVIEW_CHARS", "preview", "redact_key"]
