"""The one backoff policy and the one retry loop, on virtual time."""

from __future__ import annotations

import random

import pytest

from controlplane.retry import Backoff, TryAgain, retry_call
from controlplane.testing import FakeClock

STEADY = Backoff(initial=1.0, factor=2.0, cap=5.0, jitter=False)


class Flaky:
    """Fails with the given exceptions in turn, then answers "ok"; records when it was called."""

    def __init__(self, clock: FakeClock, *failures: BaseException) -> None:
        self.clock = clock
        self.failures = list(failures)
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(self.clock.monotonic())
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_backoff_grows_to_its_cap_and_jitters_in_the_upper_half() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, cap=4.0)
    assert [backoff.nominal(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(3)
    for n in range(6):
        delay = backoff.delay(n, rng)
        assert backoff.nominal(n) / 2 <= delay <= backoff.nominal(n)
    assert Backoff(jitter=False).delay(3) == Backoff().nominal(3)
    with pytest.raises(ValueError):
        Backoff(initial=2.0, cap=1.0)


async def test_retries_the_named_failures_with_the_backoffs_delays() -> None:
    clock = FakeClock()
    call = Flaky(clock, KeyError("a"), KeyError("b"), KeyError("c"))
    assert await retry_call(call, retry_on=KeyError, clock=clock, backoff=STEADY) == "ok"
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert [t - call.calls[0] for t in call.calls] == [0.0, 1.0, 3.0, 7.0]


async def test_anything_else_is_raised_at_once() -> None:
    clock = FakeClock()
    call = Flaky(clock, ValueError("not ours to retry"))
    with pytest.raises(ValueError, match="not ours"):
        await retry_call(call, retry_on=KeyError, clock=clock, backoff=STEADY)
    assert len(call.calls) == 1 and clock.sleeps == []


async def test_gives_up_after_the_attempts_with_the_last_failure_as_it_was() -> None:
    clock = FakeClock()
    last = KeyError("third")
    call = Flaky(clock, KeyError("first"), KeyError("second"), last, KeyError("never"))
    with pytest.raises(KeyError) as info:
        await retry_call(call, retry_on=KeyError, clock=clock, backoff=STEADY, attempts=3)
    assert info.value is last
    assert len(call.calls) == 3 and clock.sleeps == [1.0, 2.0]  # no sleep after the last attempt


async def test_no_call_starts_after_the_deadline_and_the_last_sleep_ends_on_it() -> None:
    clock = FakeClock()
    start = clock.monotonic()
    call = Flaky(clock, *(KeyError(n) for n in range(20)))
    with pytest.raises(KeyError):
        await retry_call(call, retry_on=KeyError, clock=clock, backoff=STEADY, deadline=start + 10)
    assert [t - start for t in call.calls] == [0.0, 1.0, 3.0, 7.0, 10.0]
    assert clock.sleeps == [1.0, 2.0, 4.0, 3.0]
    assert clock.monotonic() == start + 10


async def test_a_deadline_already_reached_allows_one_call() -> None:
    clock = FakeClock()
    call = Flaky(clock, KeyError("held"))
    with pytest.raises(KeyError):
        await retry_call(call, retry_on=KeyError, clock=clock, backoff=STEADY, deadline=clock.monotonic())
    assert len(call.calls) == 1 and clock.sleeps == []


async def test_try_again_retries_and_finally_raises_its_cause() -> None:
    clock = FakeClock()
    cause = ConnectionError("answer lost; looked it up: not there")
    seen: list[tuple[BaseException, float]] = []
    call = Flaky(clock, TryAgain(cause), TryAgain(cause), TryAgain(cause))
    with pytest.raises(ConnectionError) as info:
        await retry_call(
            call,
            clock=clock,
            backoff=STEADY,
            attempts=3,
            before_retry=lambda failure, delay: seen.append((failure, delay)),
        )
    assert info.value is cause and len(call.calls) == 3
    assert seen == [(cause, 1.0), (cause, 2.0)]  # the failure itself, not the TryAgain wrapper
    call = Flaky(clock, TryAgain(cause))
    assert await retry_call(call, clock=clock, backoff=STEADY, attempts=3) == "ok"


async def test_the_same_seed_gives_the_same_delays() -> None:
    async def sleeps(seed: int) -> list[float]:
        clock = FakeClock()
        call = Flaky(clock, *(KeyError(n) for n in range(4)))
        await retry_call(call, retry_on=KeyError, clock=clock, backoff=Backoff(), rng=random.Random(seed))
        return clock.sleeps

    first, again, other = await sleeps(7), await sleeps(7), await sleeps(8)
    assert first == again and first != other
    assert all(Backoff().nominal(n) / 2 <= s <= Backoff().nominal(n) for n, s in enumerate(first))
