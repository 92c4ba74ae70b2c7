"""How reconcile failures are sorted into retry or park (workers/contract.py:classify)."""

from __future__ import annotations

import pytest

from controlplane.fly.errors import (
    FlyBadRequest,
    FlyHostCapacity,
    FlyLeaseHeld,
    FlyMachineFailed,
    FlyNotFound,
    FlyQuotaExceeded,
    FlyRateLimited,
    FlyServerError,
    FlyUnauthorized,
)
from workers.contract import FLEET_ERROR_RETRY, Result, TerminalError, TransientError, classify


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (FlyServerError("boom", status_code=502), "transient"),
        (FlyRateLimited("slow down", retry_after=7.0, status_code=429), "transient"),
        (FlyLeaseHeld("held", status_code=409), "transient"),
        (FlyHostCapacity("host full", status_code=409), "transient"),
        (FlyNotFound("machine not found", status_code=404), "transient"),
        (FlyBadRequest("invalid memory size", status_code=400), "terminal"),
        (FlyQuotaExceeded("over the allowed quota", status_code=403), "terminal"),
        (FlyMachineFailed("machine is failed", last_state="failed"), "terminal"),
        (TransientError("gateway not up"), "transient"),
        (TerminalError("plan 'gold' is not in the plan catalog"), "terminal"),
        (RuntimeError("a bug"), "transient"),
    ],
)
def test_failures_are_retried_or_parked_by_their_meaning(error: Exception, kind: str) -> None:
    assert classify(error)[0] == kind


def test_a_rate_limit_keeps_the_servers_delay() -> None:
    assert classify(FlyRateLimited("slow down", retry_after=7.0, status_code=429))[2] == 7.0


def test_a_refused_fly_token_is_retried_slowly_not_parked() -> None:
    kind, message, retry_after = classify(FlyUnauthorized("token expired", status_code=401))
    assert kind == "transient" and retry_after == FLEET_ERROR_RETRY and "CP_FLY_API_TOKEN" in message


def test_result_done_and_after() -> None:
    assert Result.done().is_done and not Result.after(3).is_done and Result.after(-1).requeue_after == 0.0
