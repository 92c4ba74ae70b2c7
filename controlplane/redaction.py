"""Redaction of secret values from anything that leaves the process (logs, audit rows, errors).

Two layers:
* known secrets: values registered at run time with :func:`register_secret` (e.g. a key being
  validated) are replaced wherever they appear, even as substrings;
* shapes: anything that looks like a provider key, a bearer/FlyV1 token, a Stripe secret, a private
  key or a vault ciphertext is replaced, and mapping entries whose *name* says "secret" are masked.

Registration is per value and weakly bounded (a small LRU), so registering never leaks memory.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from controlplane.url_redaction import redact_urls_in_text

MASK = "[REDACTED]"

#: The one alphabet of vault key ids, 1-32 ASCII letters, digits, '-' or '_': the settings
#: (CP_VAULT_KEYS), ``keys generate --id`` and the vault accept nothing else, and the ciphertext
#: pattern below matches every id they accept.
VAULT_KEY_ID = r"[A-Za-z0-9_\-]{1,32}"

#: Patterns of secret-shaped strings (provider keys, tokens, ciphertexts).
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"sk-ant-[A-Za-z0-9]{2,8}\d{0,2}-[A-Za-z0-9_\-]{16,}",  # Anthropic api/admin/oauth
        r"sk-(?:proj|svcacct|admin|or-v1|cp|api)-[A-Za-z0-9_\-]{16,}",  # OpenAI project etc., OpenRouter
        r"\bsk-[A-Za-z0-9_\-]{16,}",  # OpenAI legacy, DeepSeek, Moonshot, MiniMax
        r"\bAIza[0-9A-Za-z_\-]{30,}",  # Google API key
        r"\bgsk_[A-Za-z0-9]{20,}",  # Groq
        r"\bxai-[0-9A-Za-z_]{20,}",  # xAI
        r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}",  # Stripe secret / restricted keys
        r"\bwhsec_[0-9A-Za-z+/=]{10,}",  # Stripe webhook secret
        r"\bfm[12][ra]?_[A-Za-z0-9_\-+/=]{10,}",  # Fly macaroon tokens
        r"FlyV1\s+[^\s\"',]+",  # Fly token header value
        r"(?i)\bbearer\s+[A-Za-z0-9_\-.=+/]{8,}",  # Authorization: Bearer <token>
        r"v1:" + VAULT_KEY_ID + r":[A-Za-z0-9_\-]{32,}",  # vault ciphertexts (any accepted key id)
        r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}(?:\.[A-Za-z0-9_\-]*)?",  # JWTs
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
        r"\bxapp-[A-Za-z0-9\-]{10,}",  # Slack app tokens
        r"\b\d{6,12}:[A-Za-z0-9_\-]{30,}",  # Telegram bot tokens
    )
)

#: Mapping keys whose values are always masked, whatever they look like.
SENSITIVE_KEY = re.compile(
    r"(?i)(secret|password|passwd|token|api[_-]?key|apikey|authorization|private[_-]?key|"
    r"credential|nonce|cookie|plaintext|ciphertext|vault_keys|master[_-]?key)"
)

#: Mapping keys that look sensitive by name but hold display metadata only.
SAFE_KEYS = frozenset(
    {
        "last4",
        "fingerprint",
        "key_id",
        "provider",
        "token_count",
        "max_tokens",
        "tokens",
        "secret_id",
        "secret_name",
        "secrets_version",
        "min_secrets_version",
        "token_type",
        "secrets_digest",
        "tokens_per_month",
        "max_tokens_per_month",
        "token_limit",
        "secret_env",
    }
)

_MIN_REGISTERED_LEN = 6
_MAX_REGISTERED = 4096
_registered: OrderedDict[str, int] = OrderedDict()  # value -> how many holders registered it
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that it is redacted wherever it appears later (logs, audit, errors)."""
    if not value or len(value) < _MIN_REGISTERED_LEN:
        return
    with _lock:
        _registered[value] = _registered.get(value, 0) + 1
        _registered.move_to_end(value)
        while len(_registered) > _MAX_REGISTERED:
            _registered.popitem(last=False)


def forget_secret(value: str | None) -> None:
    """Undo one :func:`register_secret` of ``value`` (it stays redacted while others hold it)."""
    if value:
        with _lock:
            left = _registered.get(value, 0) - 1
            if left > 0:
                _registered[value] = left
            else:
                _registered.pop(value, None)


@contextmanager
def registered_secret(value: str | None) -> Iterator[None]:
    """Redact ``value`` everywhere for the duration of the block (then forget it, so the redactor
    does not keep plaintext alive longer than its user)."""
    register_secret(value)
    try:
        yield
    finally:
        forget_secret(value)


def redact_text(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped substring masked."""
    if not text:
        return text
    with _lock:
        known = list(_registered)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(MASK, text)
    return redact_urls_in_text(text)


def is_sensitive_key(key: str) -> bool:
    return key.lower() not in SAFE_KEYS and bool(SENSITIVE_KEY.search(key))


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Recursively redact strings inside mappings/sequences; mask values under sensitive keys."""
    if _depth > 20:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_sensitive_key(k) and v not in (None, "", [], {})
                else redact_value(v, _depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, _depth + 1) for v in value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    # Objects: their str() could carry anything; SecretStr already masks itself.
    return redact_text(str(value))


__all__ = [
    "MASK",
    "SECRET_PATTERNS",
    "VAULT_KEY_ID",
    "forget_secret",
    "is_sensitive_key",
    "redact_text",
    "redact_value",
    "register_secret",
    "registered_secret",
]
