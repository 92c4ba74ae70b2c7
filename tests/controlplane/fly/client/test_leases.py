"""Leases: acquire/refresh/release, nonce on mutations, background refresh, ALWAYS released."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
import respx

from controlplane.fly import (
    FlyClient,
    FlyLeaseHeld,
    LeaseLost,
    MachineLease,
    UpdateMachineRequest,
    clear_stale_lease,
)
from controlplane.fly.transport import LEASE_NONCE_HEADER
from tests.support.fly_fakes import FakeClock, json_response, machine_json, make_client

LEASE_OK = {
    "status": "success",
    "data": {"nonce": "n-123", "expires_at": 2000000000, "owner": "cp@x", "version": "v1"},
}
HELD = {
    "status": "error",
    "message": "machine ID m1 lease currently held by other@x, expires at 2026-01-01T00:00:13Z",
    "code": "invalid",
}


class LeaseFake:
    """Stateful lease endpoints + machine update/stop, recording what was sent."""

    def __init__(self, *, refresh_fails: int = 0, held_times: int = 0) -> None:
        self.requests: list[httpx.Request] = []
        self.held_times = held_times
        self.refresh_fails = refresh_fails
        self.nonce: str | None = None
        self.released = 0
        self.refreshes = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/v1")
        nonce = request.headers.get(LEASE_NONCE_HEADER)
        if path.endswith("/lease") and request.method == "POST":
            if nonce is None:
                if self.held_times > 0:
                    self.held_times -= 1
                    return json_response(409, HELD)
                self.nonce = "n-123"
                return json_response(201, LEASE_OK)
            self.refreshes += 1
            if self.refresh_fails:
                self.refresh_fails -= 1
                return json_response(
                    404, {"status": "error", "message": "lease not found", "code": "not_found"}
                )
            return json_response(201, LEASE_OK)
        if path.endswith("/lease") and request.method == "DELETE":
            assert nonce == self.nonce
            self.released += 1
            self.nonce = None
            return json_response(200, {"status": "success", "data": {"ok": True}})
        if path.endswith("/lease") and request.method == "GET":
            return (
                json_response(200, LEASE_OK)
                if self.nonce
                else json_response(404, {"error": "lease not found"})
            )
        if request.method == "POST" and self.nonce and nonce != self.nonce:
            return json_response(409, HELD)
        if path == "/apps/a/machines/m1" and request.method == "POST":
            return json_response(200, machine_json("m1", instance_id="v2", state="replacing"))
        if path == "/apps/a/machines/m1" and request.method == "GET":
            return json_response(200, machine_json("m1"))
        return json_response(200, {})


async def test_lease_nonce_on_every_mutation_and_release() -> None:
    fake = LeaseFake()
    clock = FakeClock(auto=False)
    fly, transport = make_client(fake, clock)
    async with fly:
        async with MachineLease(fly, "a", "m1", description="reconcile") as lease:
            assert lease.nonce == "n-123" and lease.version == "v1"
            machine = await fly.get_machine("a", "m1")
            assert machine.config is not None
            await fly.update_machine(
                "a",
                "m1",
                UpdateMachineRequest(config=machine.config, current_version="v1"),
                nonce=lease.nonce,
            )
            await fly.stop_machine("a", "m1", nonce=lease.nonce)
    assert fake.released == 1 and lease.released
    acquire = transport.sent[0]
    # the description carries a per-attempt marker (to recognise our lease after an ambiguous answer)
    assert acquire.body["ttl"] == 13 and re.fullmatch(
        r"reconcile \[[0-9a-f]{12}\]", acquire.body["description"]
    )
    assert LEASE_NONCE_HEADER not in acquire.headers
    for sent in transport.sent[1:]:
        if sent.method != "GET":
            assert sent.headers[LEASE_NONCE_HEADER] == "n-123", sent.path
    assert transport.violations == []


async def test_mutation_without_nonce_on_leased_machine_is_lease_held() -> None:
    fake = LeaseFake()
    fly, _ = make_client(fake, FakeClock(auto=False))
    async with fly, MachineLease(fly, "a", "m1"):
        with pytest.raises(FlyLeaseHeld):
            await fly.stop_machine("a", "m1")


async def test_background_refresh_every_ttl_minus_1_over_3() -> None:
    fake = LeaseFake()
    clock = FakeClock(auto=False)
    fly, transport = make_client(fake, clock)
    async with fly:
        async with MachineLease(fly, "a", "m1", ttl=13) as lease:
            assert lease.refresh_interval == pytest.approx(4.0)
            await clock.advance(3.9)
            assert fake.refreshes == 0
            await clock.advance(0.2)
            assert fake.refreshes == 1
            await clock.advance(8.0)
            assert fake.refreshes == 3 and lease.refreshes == 3
            lease.check()
    refreshes = [
        s
        for s in transport.sent
        if s.method == "POST" and s.path.endswith("/lease") and LEASE_NONCE_HEADER in s.headers
    ]
    assert len(refreshes) == 3
    assert all(s.headers[LEASE_NONCE_HEADER] == "n-123" and s.body == {"ttl": 13} for s in refreshes)
    assert fake.released == 1
    assert transport.violations == []


async def test_released_on_exception() -> None:
    fake = LeaseFake()
    fly, _ = make_client(fake, FakeClock(auto=False))
    async with fly:
        with pytest.raises(RuntimeError, match="boom"):
            async with MachineLease(fly, "a", "m1"):
                raise RuntimeError("boom")
    assert fake.released == 1


async def test_released_on_cancellation() -> None:
    fake = LeaseFake()
    clock = FakeClock(auto=False)
    fly, _ = make_client(fake, clock)
    entered = asyncio.Event()

    async def worker() -> None:
        async with MachineLease(fly, "a", "m1"):
            entered.set()
            await asyncio.Event().wait()  # blocks forever

    async with fly:
        task = asyncio.create_task(worker())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(20):
            await asyncio.sleep(0)
    assert fake.released == 1


async def test_release_survives_a_second_cancellation() -> None:
    gate = asyncio.Event()
    fake = LeaseFake()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            await gate.wait()  # slow release
        return fake(request)

    fly, _ = make_client(handler, FakeClock(auto=False))
    entered = asyncio.Event()

    async def worker() -> None:
        async with MachineLease(fly, "a", "m1"):
            entered.set()
            await asyncio.Event().wait()

    async with fly:
        task = asyncio.create_task(worker())
        await entered.wait()
        task.cancel()
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()  # cancelled again while releasing
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        for _ in range(50):
            await asyncio.sleep(0)
    assert fake.released == 1


async def test_lease_lost_is_reported() -> None:
    fake = LeaseFake(refresh_fails=1)
    clock = FakeClock(auto=False)
    fly, _ = make_client(fake, clock)
    async with fly:
        async with MachineLease(fly, "a", "m1") as lease:
            await clock.advance(4.1)
            assert lease.lost is not None
            with pytest.raises(LeaseLost):
                lease.check()
    assert fake.released == 1  # still attempted


async def test_acquire_conflict_and_wait_for_holder() -> None:
    fly, _ = make_client(LeaseFake(held_times=5), FakeClock())
    async with fly:
        with pytest.raises(FlyLeaseHeld) as info:
            async with MachineLease(fly, "a", "m1"):
                pass
        assert "currently held" in str(info.value)
    fake = LeaseFake(held_times=2)
    fly, transport = make_client(fake, FakeClock())
    async with fly:
        async with MachineLease(fly, "a", "m1", acquire_timeout=30) as lease:
            assert lease.nonce == "n-123"
    acquires = [s for s in transport.sent if s.method == "POST" and s.path.endswith("/lease")]
    assert len(acquires) == 3 and fake.released == 1


async def test_flat_lease_body_and_stale_lease_recovery(fly: FlyClient, router: respx.Router) -> None:
    router.post("/apps/a/machines/m1/lease").respond(201, json={"nonce": "flat", "expires_at": 1})
    router.get("/apps/a/machines/m1/lease").respond(
        200, json={"status": "success", "data": {"nonce": "stale"}}
    )
    release = router.delete("/apps/a/machines/m1/lease").respond(
        200, json={"status": "success", "data": {"ok": True}}
    )
    assert (await fly.acquire_lease("a", "m1")).nonce == "flat"
    assert await clear_stale_lease(fly, "a", "m1") is True
    assert release.calls.last.request.headers[LEASE_NONCE_HEADER] == "stale"
    assert json.loads(router.routes[0].calls.last.request.content) == {"ttl": 13}


async def test_an_unexpected_refresh_failure_marks_the_lease_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug or an unforeseen exception in the refresher must not leave the lease looking healthy
    while it silently expires."""
    fake = LeaseFake()
    clock = FakeClock(auto=False)
    fly, _ = make_client(fake, clock)

    async def broken_refresh(*args: object, **kwargs: object) -> None:
        raise KeyError("something nobody expected")

    async with fly:
        async with MachineLease(fly, "a", "m1") as lease:
            monkeypatch.setattr(fly, "refresh_lease", broken_refresh)
            await clock.advance(4.1)
            assert lease.lost is not None
            with pytest.raises(LeaseLost):
                lease.check()
    assert fake.released == 1
