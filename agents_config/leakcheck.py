"""Last line of defence: refuse to emit anything that looks like a credential.

The generators never receive secrets (keys are referenced by environment variable only), and tenant
input is validated field by field. This scan catches the rest, e.g. a key pasted into a field that
flows into the config. It looks for the shapes of provider keys and channel tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{16,}",  # Anthropic, OpenAI, DeepSeek, OpenRouter, Moonshot, MiniMax
        r"AIza[0-9A-Za-z_-]{30,}",  # Google
        r"gsk_[A-Za-z0-9]{20,}",  # Groq
        r"xai-[A-Za-z0-9]{20,}",  # xAI
        r"xox[abpre]-[A-Za-z0-9-]{10,}",  # Slack bot/user tokens
        r"xapp-[A-Za-z0-9-]{10,}",  # Slack app tokens
        r"(?<![0-9])[0-9]{6,12}:[A-Za-z0-9_-]{30,}",  # Telegram bot tokens
        r"eyJ[A-Za-z0-9_-]{15,}\.[A-Za-z0-9_-]{10,}",  # JWTs (older MiniMax keys)
        r"[MNO][A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{20,}",  # Discord bot tokens
        # unprefixed keys (Mistral, Cohere): 32+ characters mixing upper, lower case and digits
        r"(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[0-9])(?<![A-Za-z0-9])[A-Za-z0-9]{32,}",
    )
)


class SecretLikeValueError(ValueError):
    """Generated output contains a value shaped like a credential. The value is never repeated."""


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k in sorted(value):
            yield from _strings(k, f"{path}.<key>")
            yield from _strings(value[k], f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


def assert_no_secret_like_values(value: Any, *, what: str) -> None:
    """Raise :class:`SecretLikeValueError` naming the path (never the value) of a suspicious string."""
    for path, text in _strings(value, what):
        for pattern in _PATTERNS:
            if pattern.search(text):
                raise SecretLikeValueError(f"{path}: refusing to emit a value shaped like a credential")


__all__ = ["SecretLikeValueError", "assert_no_secret_like_values"]
