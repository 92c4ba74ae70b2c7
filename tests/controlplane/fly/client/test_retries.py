"""Retry rules: only where a repeat is safe; 429 always (honouring Retry-After); never a create."""

from __future__ import annotations

import httpx
import pytest
import respx

from controlplane.fly import (
    CreateMachineRequest,
    FlyBadRequest,
    FlyClient,
    FlyConnectionError,
    FlyError,
    FlyHostDisabled,
    FlyNotFound,
    FlyRateLimited,
    FlyServerError,
    FlyTimeout,
    MachineConfig,
    RetryPolicy,
    UpdateMachineRequest,
)
from tests.support.fly_fakes import FakeClock, ValidatingTransport, error, json_response, machine_json

M = machine_json("m1")


async def test_get_retried_on_5xx_then_succeeds(fly: FlyClient, router: respx.Router) -> None:
    route = router.get("/apps/a/machines/m1").mock(
        side_effect=[error(502, "bad gateway"), error(503, "unavailable"), json_response(200, M)]
    )
    machine = await fly.get_machine("a", "m1")
    assert machine.id == "m1" and route.call_count == 3


@pytest.mark.parametrize(
    "failure",
    [
        error(408, "timeout"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("eof"),
        httpx.ConnectError("refused"),
    ],
)
async def test_get_retried_on_408_and_transport_errors(
    fly: FlyClient, router: respx.Router, failure: object
) -> None:
    route = router.get("/apps/a/machines/m1").mock(side_effect=[failure, json_response(200, M)])
    assert (await fly.get_machine("a", "m1")).id == "m1"
    assert route.call_count == 2


async def test_retries_give_up_after_max_attempts(
    fly: FlyClient, router: respx.Router, clock: FakeClock
) -> None:
    route = router.get("/apps/a/machines/m1").mock(return_value=error(500, "boom"))
    with pytest.raises(FlyServerError) as info:
        await fly.get_machine("a", "m1")
    assert route.call_count == RetryPolicy().max_attempts
    assert info.value.request_id == "req-500-abc"
    # jittered exponential backoff: sleeps grow and stay under the cap
    assert len(clock.sleeps) >= RetryPolicy().max_attempts - 1
    assert all(0 < s <= RetryPolicy().max_delay for s in clock.sleeps)


@pytest.mark.parametrize(
    "failure",
    [
        error(404, "not found"),
        error(400, "bad"),
        error(401, "no"),
        error(412, "unable to start machine from current state"),
    ],
)
async def test_non_transient_errors_not_retried(
    fly: FlyClient, router: respx.Router, failure: httpx.Response
) -> None:
    route = router.get("/apps/a/machines/m1").mock(return_value=failure)
    with pytest.raises(FlyError):
        await fly.get_machine("a", "m1")
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("failure", "exc"),
    [
        (error(503, "unavailable"), FlyServerError),
        (error(408, "timed out"), FlyTimeout),
        (httpx.RemoteProtocolError("dropped"), FlyConnectionError),
        (httpx.ReadTimeout("slow"), FlyConnectionError),
    ],
)
async def test_create_is_never_blindly_retried(
    fly: FlyClient, router: respx.Router, failure: object, exc: type
) -> None:
    route = router.post("/apps/a/machines").mock(side_effect=[failure, json_response(200, M)])
    with pytest.raises(exc) as info:
        await fly.create_machine("a", CreateMachineRequest(config=MachineConfig(image="img:1")))
    assert info.value.ambiguous
    assert route.call_count == 1


async def test_update_and_start_not_retried_on_ambiguous(fly: FlyClient, router: respx.Router) -> None:
    upd = router.post("/apps/a/machines/m1").mock(return_value=error(502, "x"))
    start = router.post("/apps/a/machines/m1/start").mock(return_value=error(502, "x"))
    with pytest.raises(FlyServerError):
        await fly.update_machine("a", "m1", UpdateMachineRequest(config=MachineConfig(image="i")))
    with pytest.raises(FlyServerError):
        await fly.start_machine("a", "m1")
    assert upd.call_count == 1 and start.call_count == 1


async def test_idempotent_mutations_are_retried(fly: FlyClient, router: respx.Router) -> None:
    stop = router.post("/apps/a/machines/m1/stop").mock(
        side_effect=[error(503, "x"), json_response(200, {"ok": True})]
    )
    meta = router.post("/apps/a/machines/m1/metadata/k").mock(
        side_effect=[httpx.ReadTimeout("t"), json_response(204)]
    )
    release = router.delete("/apps/a/machines/m1/lease").mock(
        side_effect=[error(500, "x"), json_response(200, {"status": "success", "data": {"ok": True}})]
    )
    destroy = router.delete("/apps/a/machines/m1").mock(
        side_effect=[error(502, "x"), json_response(200, {"ok": True})]
    )
    await fly.stop_machine("a", "m1")
    await fly.set_metadata("a", "m1", "k", "v")
    await fly.release_lease("a", "m1", "nonce-1")
    assert await fly.destroy_machine("a", "m1")
    assert (stop.call_count, meta.call_count, release.call_count, destroy.call_count) == (2, 2, 2, 2)
    assert stop.calls[0].request.content == b"{}"  # stop always sends a JSON object


async def test_host_disabled_not_retried(fly: FlyClient, router: respx.Router) -> None:
    route = router.get("/apps/a/machines/m1").mock(
        return_value=error(503, "deploys to this host are temporarily disabled")
    )
    with pytest.raises(FlyHostDisabled):
        await fly.get_machine("a", "m1")
    assert route.call_count == 1


async def test_429_honours_retry_after_even_on_create(
    fly: FlyClient, router: respx.Router, clock: FakeClock
) -> None:
    route = router.post("/apps/a/machines").mock(
        side_effect=[error(429, "rate limited", retry_after="7"), json_response(200, M)]
    )
    machine = await fly.create_machine("a", CreateMachineRequest(config=MachineConfig(image="img:1")))
    assert machine.id == "m1" and route.call_count == 2
    backoff = [s for s in clock.sleeps if s >= 1]
    assert len(backoff) == 1 and 7.0 <= backoff[0] <= 7.0 * 1.1 + 1e-9


async def test_429_without_retry_after_uses_backoff(
    fly: FlyClient, router: respx.Router, clock: FakeClock
) -> None:
    route = router.get("/apps/a").mock(
        side_effect=[error(429, "slow"), error(429, "slow"), json_response(200, {"name": "a"})]
    )
    assert (await fly.get_app("a")).name == "a"
    assert route.call_count == 3
    assert len([s for s in clock.sleeps if s > 0]) >= 2


async def test_429_with_huge_retry_after_raises(fly: FlyClient, router: respx.Router) -> None:
    route = router.get("/apps/a").mock(return_value=error(429, "slow", retry_after="3600"))
    with pytest.raises(FlyRateLimited) as info:
        await fly.get_app("a")
    assert info.value.retry_after == 3600 and route.call_count == 1


async def test_missing_ok_deletes(fly: FlyClient, router: respx.Router) -> None:
    router.delete("/apps/a").mock(return_value=error(404, "app not found"))
    router.delete("/apps/a/volumes/vol_1").mock(return_value=error(404, "volume not found"))
    router.delete("/apps/a/machines/m1").mock(return_value=error(404, "machine not found"))
    assert await fly.delete_app("a", missing_ok=True) is False
    assert await fly.delete_volume("a", "vol_1", missing_ok=True) is False
    assert await fly.destroy_machine("a", "m1", missing_ok=True) is False
    with pytest.raises(FlyNotFound):
        await fly.delete_app("a")


async def test_bad_request_carries_request_id(fly: FlyClient, router: respx.Router) -> None:
    router.post("/apps/a/machines").mock(
        return_value=error(400, "invalid config", **{"fly_request_id": "01HREQ"})
    )
    with pytest.raises(FlyBadRequest) as info:
        await fly.create_machine("a", CreateMachineRequest(config=MachineConfig(image="i")))
    assert info.value.request_id == "01HREQ" and info.value.status_code == 400


async def test_retry_policy_is_configurable(router: respx.Router, clock: FakeClock) -> None:
    route = router.get("/apps/a").mock(return_value=error(500, "x"))
    transport = ValidatingTransport(httpx.MockTransport(router.async_handler), clock)
    async with FlyClient(
        token="t0k",
        base_url="https://fly.test",
        transport=transport,
        clock=clock,
        retry=RetryPolicy(max_attempts=2),
    ) as fly:
        with pytest.raises(FlyServerError):
            await fly.get_app("a")
    assert route.call_count == 2
