"""The re-check policy of :mod:`controlplane.byok.verdicts`, one observation at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.byok.verdicts import (
    BROKEN_AFTER,
    REFUSED,
    TRANSIENT,
    UNPROVEN_RECHECK_AFTER,
    WARNING,
    Verdict,
    failures_after_check,
    next_check_delay,
    refusal_message,
    status_after_check,
    status_at_entry,
)
from controlplane.db.models import KeyStatus as S
from controlplane.db.models import KeyVerdict as V


@pytest.mark.parametrize("previous", list(S))
def test_ok_resets_and_warnings_apply_at_once(previous: S) -> None:
    assert status_after_check(V.ok, previous, 0) is S.usable
    for warning in WARNING:
        assert status_after_check(warning, previous, 1) is S.warning


@pytest.mark.parametrize("verdict", sorted(REFUSED, key=lambda v: v.value))
@pytest.mark.parametrize("previous", [S.usable, S.warning, S.unverified])
def test_refused_breaks_only_after_enough_bad_observations(verdict: V, previous: S) -> None:
    for failures in range(1, BROKEN_AFTER):
        assert status_after_check(verdict, previous, failures) is previous
    assert status_after_check(verdict, previous, BROKEN_AFTER) is S.broken
    assert status_after_check(verdict, previous, BROKEN_AFTER + 4) is S.broken


@pytest.mark.parametrize("verdict", sorted(TRANSIENT, key=lambda v: v.value))
@pytest.mark.parametrize("previous", list(S))
def test_transient_changes_neither_status_nor_count(verdict: V, previous: S) -> None:
    assert status_after_check(verdict, previous, 2) is previous
    assert failures_after_check(verdict, 2) == 2


def test_bad_observations_are_counted_and_ok_resets() -> None:
    for bad in (*REFUSED, *WARNING):
        assert failures_after_check(bad, 0) == 1 and failures_after_check(bad, 2) == 3
    assert failures_after_check(V.ok, 5) == 0


def test_entry_policy_is_unchanged() -> None:
    assert status_at_entry(V.ok) is S.usable
    assert {status_at_entry(v) for v in WARNING} == {S.warning}
    assert {status_at_entry(v) for v in TRANSIENT} == {S.unverified}
    for refused in REFUSED:
        with pytest.raises(ValueError):
            status_at_entry(refused)


def _v(verdict: V, retry_after: float | None = None, flags: tuple[str, ...] = ()) -> Verdict:
    return Verdict(provider="openai", verdict=verdict, message="m", retry_after=retry_after, flags=flags)


@pytest.mark.parametrize("status", list(S))
def test_transient_verdicts_check_again_soon_whatever_the_status(status: S) -> None:
    assert next_check_delay(_v(V.overloaded), status) == timedelta(minutes=10)
    assert next_check_delay(_v(V.rate_limited, retry_after=7200), status) == timedelta(hours=2)
    assert next_check_delay(_v(V.rate_limited, retry_after=5), status) == timedelta(minutes=10)
    assert next_check_delay(_v(V.unknown, flags=("unproven",)), status) == UNPROVEN_RECHECK_AFTER


def test_definite_verdicts_use_the_status_delay() -> None:
    assert next_check_delay(_v(V.ok), S.usable) == timedelta(hours=24)
    assert next_check_delay(_v(V.no_credit), S.warning) == timedelta(hours=6)
    assert next_check_delay(_v(V.invalid_key), S.broken) == timedelta(hours=24)


def test_refusal_message_counts_the_checks() -> None:
    text = refusal_message(_v(V.invalid_key), "OpenAI", 2)
    assert text.startswith("OpenAI refused the key (2 of 3 checks)") and text.endswith(" m")
