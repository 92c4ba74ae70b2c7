"""Fake provider keys built at run time (never committed in a credential-like shape)."""

from __future__ import annotations

import random
import string

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def chars(n: int, alphabet: str = ALNUM, seed: int = 7) -> str:
    rng = random.Random(f"{seed}-{n}-{alphabet}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def join(*parts: str) -> str:
    return "".join(parts)


def valid_key(provider: str, seed: int = 7) -> str:
    """A key of the exact documented shape for ``provider``."""
    if provider == "anthropic":
        return join("sk-ant-", "api03-", chars(93, ALNUM + "_-", seed), "AA")
    if provider == "openai":
        return join("sk-", "proj-", chars(40, ALNUM, seed), "T3Blbk", "FJ", chars(40, ALNUM, seed + 1))
    if provider == "google":
        return join("AI", "za", chars(35, ALNUM + "_-", seed))
    if provider == "groq":
        return join("gs", "k_", chars(52, ALNUM, seed))
    if provider == "openrouter":
        return join("sk-", "or-v1-", chars(64, HEX, seed))
    if provider == "mistral":
        return chars(32, ALNUM, seed)
    if provider == "deepseek":
        return join("sk-", chars(32, HEX, seed))
    if provider == "moonshot":
        return join("sk-", chars(48, ALNUM, seed))
    if provider == "minimax":
        return join("sk-", "api-", chars(60, ALNUM, seed))
    if provider == "cohere":
        return chars(40, ALNUM, seed)
    if provider == "xai":
        return join("xa", "i-", chars(80, ALNUM + "_", seed))
    raise KeyError(provider)
