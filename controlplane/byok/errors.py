"""Errors of the BYOK layer. Messages are for people and never contain a key."""

from __future__ import annotations

from controlplane.byok.verdicts import Verdict


class ByokError(Exception):
    """Base class of every BYOK error."""


class UnknownProvider(ByokError, KeyError):
    """No such provider id; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown provider"


class KeyFormatRefused(ByokError, ValueError):
    """The key's shape is wrong for the provider (empty, wrong key type, another provider's key)."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class KeyRefused(ByokError):
    """The provider's answer refuses the key (invalid_key, revoked_or_blocked, permission)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


class KeyNotFound(ByokError, LookupError):
    """The tenant has no key for this provider."""


class TenantNotFound(ByokError, LookupError):
    """No tenant with this id."""


class InvalidModelPreference(ByokError, ValueError):
    """A model preference that is not ``<provider>/<model>`` for a known provider."""


__all__ = [
    "ByokError",
    "InvalidModelPreference",
    "KeyFormatRefused",
    "KeyNotFound",
    "KeyRefused",
    "TenantNotFound",
    "UnknownProvider",
]
