"""The result of checking a key: one :class:`~controlplane.db.models.KeyVerdict` plus a sentence a
person understands, and what the control plane does with each verdict (policy).

Policy (llm-providers.md §5)

At entry (save): ``invalid_key``, ``revoked_or_blocked`` and ``permission`` are refused (nothing is
stored); ``no_credit`` and ``spend_limit`` are stored with a warning; ``rate_limited``,
``overloaded`` and ``unknown`` are stored as "unverified" and re-checked later.

On a stored key's re-check (periodic, "test now", or the same key saved again):

* ``consecutive_failures`` counts consecutive definite bad observations (refused and warning
  verdicts); ``ok`` resets it to 0; transient verdicts leave it unchanged
  (:func:`failures_after_check`).
* ``ok`` → usable; a warning verdict → warning at once (the key is kept).
* A refused verdict marks the key broken only once ``consecutive_failures`` reaches
  :data:`BROKEN_AFTER` (one refusal may be a provider glitch); until then the status is kept and
  the message says "… refused the key (N of 3 checks)" (:func:`refusal_message`). The bad run may
  include warning observations (``consecutive_failures`` does not tell them apart): a key that was
  already failing with no credit and is then refused has not worked for that many checks.
* A transient verdict changes nothing but the check times: the last definite verdict, message,
  flags and status stay, and the next check comes after the unverified delay (or retry-after if
  longer); an ``unproven`` key (see :data:`UNPROVEN`) waits :data:`UNPROVEN_RECHECK_AFTER`, since
  the free endpoint can only give the same answer again (:func:`next_check_delay`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from controlplane.enums import KeyStatus, KeyVerdict

#: Verdicts that refuse a key at entry (nothing is stored).
REFUSED: frozenset[KeyVerdict] = frozenset(
    {KeyVerdict.invalid_key, KeyVerdict.revoked_or_blocked, KeyVerdict.permission}
)
#: Verdicts that store a key with a warning.
WARNING: frozenset[KeyVerdict] = frozenset({KeyVerdict.no_credit, KeyVerdict.spend_limit})
#: Verdicts that say nothing about the key (provider busy, answer not understood).
TRANSIENT: frozenset[KeyVerdict] = frozenset(
    {KeyVerdict.rate_limited, KeyVerdict.overloaded, KeyVerdict.unknown}
)

#: A stored key is marked broken after this many consecutive definite bad observations ending
#: in a refused verdict (see the module docstring).
BROKEN_AFTER = 3

#: When to look at a key again, by the status it was given.
RECHECK_AFTER: dict[KeyStatus, timedelta] = {
    KeyStatus.usable: timedelta(hours=24),
    KeyStatus.warning: timedelta(hours=6),
    KeyStatus.unverified: timedelta(minutes=10),
    KeyStatus.broken: timedelta(hours=24),
}

#: Flag of a key no probe could prove (MiniMax's free endpoint answers 200 to any key).
UNPROVEN = "unproven"
#: When to look again at an unproven key: re-asking the free endpoint sooner proves nothing more.
UNPROVEN_RECHECK_AFTER = timedelta(hours=24)
UNPROVEN_MESSAGE = (
    "{name} does not confirm keys on its free endpoint; the key will be proven on first use or "
    "with a paid check."
)

#: The default sentence of each verdict; ``{name}`` is the provider's display name.
MESSAGES: dict[KeyVerdict, str] = {
    KeyVerdict.ok: "{name} accepted the key.",
    KeyVerdict.invalid_key: (
        "{name} rejected this key: it is wrong, mistyped, expired or deleted. "
        "Create a new key in your {name} account and paste it again."
    ),
    KeyVerdict.revoked_or_blocked: (
        "{name} has revoked or blocked this key (or its account). "
        "Create a new key, or contact {name} support."
    ),
    KeyVerdict.no_credit: (
        "The key is valid, but the {name} account has no credit. Top it up so your agent can use it."
    ),
    KeyVerdict.spend_limit: (
        "The key is valid, but it has reached a spending limit set on your {name} account or key. "
        "Raise the limit or wait for it to reset."
    ),
    KeyVerdict.permission: (
        "The key is valid but not allowed for this use (model access, region, scope or IP "
        "restrictions). Check the key's permissions in your {name} account."
    ),
    KeyVerdict.rate_limited: (
        "{name} is rate-limiting this key right now, so it could not be fully checked. "
        "It will be checked again shortly."
    ),
    KeyVerdict.overloaded: (
        "{name} is overloaded or did not answer, so the key could not be checked. "
        "It will be checked again shortly."
    ),
    KeyVerdict.unknown: (
        "{name} gave an answer we could not interpret, so the key could not be checked. "
        "It will be checked again later."
    ),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One key check's outcome. Never holds the key; ``detail``/``preview`` are redacted."""

    provider: str
    verdict: KeyVerdict
    message: str
    retry_after: float | None = None  # seconds, from retry-after / RetryInfo.retryDelay
    http_status: int | None = None
    detail: str | None = None  # the provider's own message, redacted and shortened
    preview: str | None = None  # redacted body preview, kept for ``unknown`` verdicts
    region: str | None = None  # Moonshot / MiniMax: the region the key belongs to
    flags: tuple[str, ...] = field(default=())  # e.g. "trial_key", "free_tier", "credit_unchecked"

    @property
    def refused(self) -> bool:
        return self.verdict in REFUSED

    @property
    def transient(self) -> bool:
        return self.verdict in TRANSIENT

    def with_flags(self, *flags: str) -> Verdict:
        return replace(self, flags=tuple(dict.fromkeys((*self.flags, *flags))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "verdict": self.verdict.value,
            "message": self.message,
            "retry_after": self.retry_after,
            "http_status": self.http_status,
            "detail": self.detail,
            "preview": self.preview,
            "region": self.region,
            "flags": list(self.flags),
        }


def message_for(verdict: KeyVerdict, display_name: str) -> str:
    return MESSAGES[verdict].format(name=display_name)


def status_at_entry(verdict: KeyVerdict) -> KeyStatus:
    """The status a newly saved key gets (refused verdicts are never saved)."""
    if verdict in REFUSED:
        raise ValueError(f"verdict {verdict.value} is refused at entry")
    if verdict is KeyVerdict.ok:
        return KeyStatus.usable
    if verdict in WARNING:
        return KeyStatus.warning
    return KeyStatus.unverified


def status_after_check(verdict: KeyVerdict, previous: KeyStatus, failures: int) -> KeyStatus:
    """The status of a stored key after a re-check; ``failures`` is the new
    ``consecutive_failures`` (:func:`failures_after_check`). Transient verdicts never change it,
    a refused verdict only after :data:`BROKEN_AFTER` bad observations in a row."""
    if verdict is KeyVerdict.ok:
        return KeyStatus.usable
    if verdict in WARNING:
        return KeyStatus.warning
    if verdict in REFUSED:
        return KeyStatus.broken if failures >= BROKEN_AFTER else previous
    return previous


def failures_after_check(verdict: KeyVerdict, previous: int) -> int:
    """Consecutive definite bad observations (refused and warning verdicts): reset on ``ok``,
    +1 on a bad verdict, unchanged on a transient one."""
    if verdict is KeyVerdict.ok:
        return 0
    if verdict in TRANSIENT:
        return previous
    return previous + 1


def refusal_message(verdict: Verdict, display_name: str, failures: int) -> str:
    """The message of a stored key refused by a re-check but not (yet) marked broken."""
    return (
        f"{display_name} refused the key ({failures} of {BROKEN_AFTER} checks); it is marked "
        f"broken after {BROKEN_AFTER} failed checks in a row. {verdict.message}"
    )


def recheck_delay(status: KeyStatus, retry_after: float | None = None) -> timedelta:
    base = RECHECK_AFTER[status]
    if retry_after is not None and status is KeyStatus.unverified:
        return max(base, timedelta(seconds=retry_after))
    return base


def next_check_delay(verdict: Verdict, status: KeyStatus) -> timedelta:
    """When to check a key again after ``verdict``: transient verdicts use the unverified delay
    (or retry-after if longer) whatever status the key keeps; unproven keys wait longer."""
    if verdict.transient:
        if UNPROVEN in verdict.flags:
            return max(UNPROVEN_RECHECK_AFTER, recheck_delay(KeyStatus.unverified, verdict.retry_after))
        return recheck_delay(KeyStatus.unverified, verdict.retry_after)
    return recheck_delay(status, verdict.retry_after)


__all__ = [
    "BROKEN_AFTER",
    "MESSAGES",
    "RECHECK_AFTER",
    "REFUSED",
    "TRANSIENT",
    "UNPROVEN",
    "UNPROVEN_MESSAGE",
    "UNPROVEN_RECHECK_AFTER",
    "WARNING",
    "Verdict",
    "failures_after_check",
    "message_for",
    "next_check_delay",
    "recheck_delay",
    "refusal_message",
    "status_after_check",
    "status_at_entry",
]
