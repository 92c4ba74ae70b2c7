"""Client-side pacing (token buckets with Fly's published limits) and the global concurrency cap.

All timing runs on a fake clock: assertions are on virtual timestamps and call order, never on
wall-clock time.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from controlplane.fly import FlyClient
from controlplane.fly.ratelimit import Limit, RateLimiter, TokenBucket
from tests.fly_client.conftest import make_client
from tests.fly_client.support import FakeClock, ValidatingTransport, json_response, machine_json


async def test_bucket_burst_then_steady_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Limit(rate=1.0, burst=3), clock)
    start = clock.now
    stamps = []
    for _ in range(6):
        await bucket.acquire()
        stamps.append(round(clock.now - start, 6))
    assert stamps == [0, 0, 0, 1, 2, 3]


async def test_bucket_refills_while_idle() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Limit(rate=1.0, burst=3), clock)
    for _ in range(3):
        await bucket.acquire()
    clock.now += 10  # idle for 10 s: back to a full burst, not 10 tokens
    start = clock.now
    for _ in range(4):
        await bucket.acquire()
    assert clock.now - start == pytest.approx(1.0)


async def test_per_machine_action_paced_at_1_per_second(fly: FlyClient, router: respx.Router, transport) -> None:  # type: ignore[no-untyped-def]
    router.post("/apps/a/machines/m1/stop").respond(200, json={})
    await asyncio.gather(*(fly.stop_machine("a", "m1") for _ in range(7)))
    times = sorted(s.time for s in transport.calls("POST", "/apps/a/machines/m1/stop"))
    base = times[0]
    assert [round(t - base, 6) for t in times] == [0, 0, 0, 1, 2, 3, 4]


async def test_get_machine_has_its_own_5_per_second_burst_10(fly: FlyClient, router: respx.Router, transport) -> None:  # type: ignore[no-untyped-def]
    router.get("/apps/a/machines/m1").respond(200, json=machine_json("m1"))
    for _ in range(15):
        await fly.get_machine("a", "m1")
    times = [s.time for s in transport.calls("GET", "/apps/a/machines/m1")]
    offsets = [round(t - times[0], 6) for t in times]
    assert offsets[:10] == [0] * 10
    assert offsets[10:] == [0.2, 0.4, 0.6, 0.8, 1.0]


async def test_buckets_are_per_scope(fly: FlyClient, router: respx.Router, transport, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    router.post(url__regex=r".*/machines/m\d+/stop").respond(200, json={})
    start = clock.now
    await asyncio.gather(*(fly.stop_machine("a", f"m{i}") for i in range(20)))
    assert clock.now == start  # 20 different machines: nobody waited
    assert len(transport.sent) == 20


async def test_app_deletions_100_per_minute(fly: FlyClient, router: respx.Router, transport) -> None:  # type: ignore[no-untyped-def]
    router.delete(url__regex=r".*/apps/app\d+").respond(202)
    for i in range(12):
        await fly.delete_app(f"app{i}")
    times = [s.time for s in transport.calls("DELETE")]
    # burst of 10 across all apps, then one every 0.6 s
    assert [round(t - times[0], 6) for t in times][9:] == [0, 0.6, 1.2]


def test_limiter_prunes_idle_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, max_buckets=10)
    for i in range(50):
        limiter.bucket("stop_machine", f"m{i}")
    assert len(limiter) <= 10


async def test_disabled_limiter_does_not_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, enabled=False)
    for _ in range(10):
        assert await limiter.acquire("x", "y") == 0.0
    assert clock.now == 1000.0


async def test_global_concurrency_cap() -> None:
    clock = FakeClock()
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return json_response(200, machine_json(request.url.path.rsplit("/", 1)[-1]))

    fly, transport = make_client(handler, clock, max_concurrency=4)
    async with fly:
        tasks = [asyncio.create_task(fly.get_machine("a", f"m{i}")) for i in range(12)]
        for _ in range(50):
            await asyncio.sleep(0)
        assert peak == 4 and in_flight == 4
        release.set()
        await asyncio.gather(*tasks)
    assert peak == 4 and len(transport.sent) == 12
    assert transport.violations == []


async def test_long_polls_do_not_starve_other_calls() -> None:
    clock = FakeClock()
    hold = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/wait"):
            await hold.wait()
            return json_response(200, {"ok": True, "state": "started"})
        return json_response(200, machine_json("m9"))

    fly, _ = make_client(handler, clock, max_concurrency=2)
    async with fly:
        waits = [asyncio.create_task(fly.wait_machine("a", f"m{i}", "started", version="v1")) for i in range(2)]
        for _ in range(20):
            await asyncio.sleep(0)
        machine = await asyncio.wait_for(fly.get_machine("a", "m9"), timeout=5)
        assert machine.id == "m9"
        hold.set()
        await asyncio.gather(*waits)


async def test_pacing_can_be_disabled_and_custom_limits_apply(router: respx.Router) -> None:
    router.post("/apps/a/machines/m1/stop").respond(200, json={})
    clock = FakeClock()
    transport = ValidatingTransport(httpx.MockTransport(router.async_handler), clock)
    async with FlyClient(token="t0k", base_url="https://fly.test", transport=transport, clock=clock,
                         rate_limiting=False) as fly:
        assert fly.http.limiter.enabled is False
        for _ in range(10):
            await fly.stop_machine("a", "m1")
    assert clock.now == 1000.0
    async with FlyClient(token="t0k", base_url="https://fly.test", transport=transport, clock=clock,
                         rate_limits={"stop_machine": Limit(rate=10.0, burst=1)}) as fly:
        for _ in range(3):
            await fly.stop_machine("a", "m1")
    assert clock.now == pytest.approx(1000.2)


async def test_default_client_paces_with_real_limiter() -> None:
    fly = FlyClient(token="t0k")
    assert fly.http.limiter.enabled and fly.http.limiter.limit_for("get_machine") == Limit(5.0, 10)
    assert fly.http.limiter.limit_for("update_machine") == Limit(1.0, 3)
    await fly.aclose()
