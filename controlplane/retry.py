"""One backoff policy for everything that waits before trying again, and the one retry loop.

:class:`Backoff` is pure (attempt number -> delay); the in-process retry loops of the Fly helpers and
the reconcile queue's per-tenant backoff both take their delays from it, so "how long until the next
try" is decided in one place. :func:`retry_call` is the one in-process retry loop: tenacity's, with
its sleeps, its deadline and its delays on an injectable :class:`~controlplane.clock.Clock` (tests run
it on :class:`controlplane.testing.FakeClock`); :func:`backoff_wait` lets a caller that builds its own
tenacity loop (the Fly transport) take its delays from a :class:`Backoff` too. Jitter is "full jitter on the upper half" (AWS architecture blog's
"equal jitter"): ``delay = d/2 + uniform(0, d/2)`` with ``d = min(cap, initial * factor**attempt)``,
so retries of many callers spread out and never shrink below half the nominal delay.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from controlplane.clock import Clock

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``initial`` seconds for the first retry, times ``factor`` per attempt,
    never above ``cap``; ``jitter`` spreads each delay over its upper half."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.factor >= 1 and self.cap >= self.initial):
            raise ValueError("Backoff: need initial > 0, factor >= 1 and cap >= initial")

    def nominal(self, attempt: int) -> float:
        """The un-jittered delay before retry number ``attempt`` (0 = the first retry)."""
        exponent = min(max(attempt, 0), 64)  # no float overflow for absurd attempt counts
        return min(self.cap, self.initial * self.factor**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt``, jittered when ``jitter`` is on."""
        nominal = self.nominal(attempt)
        if not self.jitter:
            return nominal
        return nominal / 2 + (rng or random).uniform(0, nominal / 2)


class TryAgain(Exception):
    """Raised inside a :func:`retry_call` call to ask for another attempt after the backoff, when
    the failure to report is not itself an exception to retry on (an ambiguous create confirmed
    absent, a wait not there yet). If no attempt is left, :func:`retry_call` raises ``cause``."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


def backoff_wait(backoff: Backoff, rng: random.Random | None = None) -> Callable[[RetryCallState], float]:
    """A tenacity ``wait=``: the delay after failed attempt number ``n`` is ``backoff.delay(n - 1)``."""

    def wait(state: RetryCallState) -> float:
        return backoff.delay(state.attempt_number - 1, rng)

    return wait


async def retry_call(
    call: Callable[[], Awaitable[T]],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
    clock: Clock,
    backoff: Backoff,
    attempts: int | None = None,
    deadline: float | None = None,
    rng: random.Random | None = None,
    before_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Await ``call()`` until it returns; after an exception in ``retry_on`` (or a :class:`TryAgain`)
    sleep the backoff's delay on ``clock`` and call again. Anything else is raised at once.

    It stops after ``attempts`` calls or at ``deadline`` (a ``clock.monotonic()`` instant), raising
    the last failure as it was (a :class:`TryAgain`'s ``cause``): no call starts after the deadline,
    the sleep before the last one is cut short to end at it, and a failure at or after it is final.
    With neither it retries until the call succeeds. ``before_retry(failure, delay)`` runs before
    each sleep (log it there).
    """
    wait_for_backoff = backoff_wait(backoff, rng)

    def wait(state: RetryCallState) -> float:
        delay = wait_for_backoff(state)
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - clock.monotonic()))
        return delay

    def stop(state: RetryCallState) -> bool:
        if attempts is not None and state.attempt_number >= attempts:
            return True
        return deadline is not None and clock.monotonic() >= deadline

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if before_retry is not None and exc is not None:
            before_retry(exc.cause if isinstance(exc, TryAgain) else exc, state.upcoming_sleep)

    retryable = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type((TryAgain, *retryable)),
        wait=wait,
        stop=stop,
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await call()
    except TryAgain as again:
        raise again.cause from None
    raise AssertionError("unreachable: tenacity either returns a result or raises")  # pragma: no cover


__all__ = ["Backoff", "TryAgain", "backoff_wait", "retry_call"]
