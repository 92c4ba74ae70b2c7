"""What the emulated OpenClaw agent inside a machine knows about itself: model credentials it finds
unusable, channel accounts that fail, and the token/cost usage it has counted (pydantic records, so
they are part of an emulator snapshot).

Failure windows follow OpenClaw 2026.9.6's own policy (``src/agents/auth-profiles/usage-failure-state``
in the installed package, confirmed by the captures in ``tests/support/openclaw_captures``):

* ``billing``: profile *disabled* for 10 min, doubling per consecutive failure, at most 24 h;
* ``auth_permanent`` (revoked key): *disabled* 10 min, doubling, at most 1 h;
* ``auth``: *cooldown* 30 s, 1 min, then 5 min;
* ``rate_limit``: *cooldown* 30 s, doubling, at most 24 h (its count survives an expired window).

OpenClaw resets the failure count when a window has expired before the next failure, so an agent
whose provider keeps refusing sees the same window again and again (``rate_limit`` excepted). The
emulator assumes the agent keeps receiving traffic while a fault is set (``persistent=True``): a new
window starts the moment the previous one ends, so ``models status`` shows the profile unusable for
as long as the fault lasts. ``persistent=False`` models one failed message and no further traffic:
the profile is usable again when its first window ends.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CredentialReason = Literal["billing", "auth", "auth_permanent", "rate_limit"]
CREDENTIAL_REASONS: tuple[CredentialReason, ...] = ("billing", "auth", "auth_permanent", "rate_limit")

_TEN_MINUTES = 600.0
_DAY = 86_400.0


def failure_window(reason: CredentialReason, failures: int) -> float:
    """Seconds a profile stays unusable after its ``failures``-th consecutive failure (1-based)."""
    n = max(1, failures)
    if reason == "billing":
        return min(_TEN_MINUTES * 2.0 ** (n - 1), _DAY)
    if reason == "auth_permanent":
        return min(_TEN_MINUTES * 2.0 ** (n - 1), 3_600.0)
    if reason == "rate_limit":
        return min(30.0 * 2.0 ** (n - 1), _DAY)
    return 30.0 if n == 1 else 60.0 if n == 2 else 300.0


def window_kind(reason: CredentialReason) -> Literal["disabled", "cooldown"]:
    return "disabled" if reason in ("billing", "auth_permanent") else "cooldown"


class CredentialFault(BaseModel):
    """The provider refuses the agent's key for ``reason`` since ``since_wall`` (unix seconds)."""

    provider: str
    reason: CredentialReason
    since_wall: float
    persistent: bool = True

    def window_at(self, wall: float) -> tuple[float, int] | None:
        """(unusable until, consecutive failures) at ``wall``, or None once the profile is usable."""
        start, failures = self.since_wall, 1
        while True:
            # Only rate limits escalate: OpenClaw resets the other counts after an expired window.
            until = start + failure_window(self.reason, failures if self.reason == "rate_limit" else 1)
            if wall < until:
                return until, failures
            if not self.persistent:
                return None
            start, failures = until, failures + 1


class ChannelFault(BaseModel):
    """A channel account fails its checks (the gateway gave up on it: terminal disconnect)."""

    channel: str
    error: str
    since_wall: float


class UsageEntry(BaseModel):
    """Tokens and cost the agent counted for one provider/model on one UTC day."""

    day: str  # YYYY-MM-DD
    provider: str
    model: str
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    input_cost: float = 0.0
    output_cost: float = 0.0
    calls: int = 0
    unpriced_calls: int = 0  # calls without a known price (OpenClaw's "missingCostEntries")
    first_wall: float
    last_wall: float


class AgentState(BaseModel):
    credential_faults: dict[str, CredentialFault] = Field(default_factory=dict)  # by provider
    channel_faults: dict[str, ChannelFault] = Field(default_factory=dict)  # by channel
    usage: list[UsageEntry] = Field(default_factory=list)
