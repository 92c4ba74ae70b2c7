"""Client-side pacing (token buckets at ~90% of Fly's published limits) and the global concurrency cap.

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
from tests.support.fly_fakes import FakeClock, ValidatingTransport, json_response, machine_json, make_client


async def test_bucket_burst_then_steady_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Limit(rate=1.0, burst=3), clock)
    start = clock.now_monotonic
    stamps = []
    for _ in range(6):
        await bucket.acquire()
        stamps.append(round(clock.now_monotonic - start, 6))
    assert stamps == [0, 0, 0, 1, 2, 3]


async def test_bucket_refills_while_idle() -> None:
    clock = FakeClock()
    bucket = TokenBucket(Limit(rate=1.0, burst=3), clock)
    for _ in range(3):
        await bucket.acquire()
    clock.now_monotonic += 10  # idle for 10 s: back to a full burst, not 10 tokens
    start = clock.now_monotonic
    for _ in range(4):
        await bucket.acquire()
    assert clock.now_monotonic - start == pytest.approx(1.0)


async def test_per_machine_action_paced_below_1_per_second(
    fly: FlyClient, router: respx.Router, transport
) -> None:  # type: ignore[no-untyped-def]
    router.post("/apps/a/machines/m1/stop").respond(200, json={})
    await asyncio.gather(*(fly.stop_machine("a", "m1") for _ in range(7)))
    times = sorted(s.time for s in transport.calls("POST", "/apps/a/machines/m1/stop"))
    base = times[0]
    # Fly: 1/s burst 3; we keep a margin: burst 2, then one every 1/0.9 s
    step = 1 / 0.9
    assert [round(t - base, 6) for t in times] == [
        round(x, 6) for x in (0, 0, step, 2 * step, 3 * step, 4 * step, 5 * step)
    ]
    # never more than Fly allows in any window: at most 3 + (window seconds) calls
    for t in times:
        in_window = [u for u in times if t <= u < t + 2.0]
        assert len(in_window) <= 3 + 2


async def test_get_machine_has_its_own_bucket_below_5_per_second_burst_10(
    fly: FlyClient, router: respx.Router, transport
) -> None:  # type: ignore[no-untyped-def]
    router.get("/apps/a/machines/m1").respond(200, json=machine_json("m1"))
    for _ in range(14):
        await fly.get_machine("a", "m1")
    times = [s.time for s in transport.calls("GET", "/apps/a/machines/m1")]
    offsets = [round(t - times[0], 6) for t in times]
    assert offsets[:9] == [0] * 9  # burst 9 (Fly: 10)
    step = 1 / 4.5  # Fly: 5/s
    assert offsets[9:] == [round(step * k, 6) for k in range(1, 6)]


async def test_buckets_are_per_scope(
    fly: FlyClient, router: respx.Router, transport, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    router.post(url__regex=r".*/machines/m\d+/stop").respond(200, json={})
    start = clock.now_monotonic
    await asyncio.gather(*(fly.stop_machine("a", f"m{i}") for i in range(20)))
    assert clock.now_monotonic == start  # 20 different machines: nobody waited
    assert len(transport.sent) == 20


async def test_app_deletions_100_per_minute(fly: FlyClient, router: respx.Router, transport) -> None:  # type: ignore[no-untyped-def]
    router.delete(url__regex=r".*/apps/app\d+").respond(202)
    for i in range(12):
        await fly.delete_app(f"app{i}")
    times = [s.time for s in transport.calls("DELETE")]
    # burst of 9 across all apps (org-wide), then one every 0.6/0.9 s (Fly: 100/min)
    step = 60 / 100 / 0.9
    assert [round(t - times[0], 6) for t in times][8:] == [
        0,
        round(step, 6),
        round(2 * step, 6),
        round(3 * step, 6),
    ]


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
    assert clock.now_monotonic == 1000.0


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
        waits = [
            asyncio.create_task(fly.wait_machine("a", f"m{i}", "started", version="v1")) for i in range(2)
        ]
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
    async with FlyClient(
        token="t0k", base_url="https://fly.test", transport=transport, clock=clock, rate_limiting=False
    ) as fly:
        assert fly.http.limiter.enabled is False
        for _ in range(10):
            await fly.stop_machine("a", "m1")
    assert clock.now_monotonic == 1000.0
    async with FlyClient(
        token="t0k",
        base_url="https://fly.test",
        transport=transport,
        clock=clock,
        rate_limits={"stop_machine": Limit(rate=10.0, burst=1)},
    ) as fly:
        for _ in range(3):
            await fly.stop_machine("a", "m1")
    assert clock.now_monotonic == pytest.approx(1000.2)


async def test_default_client_paces_with_real_limiter() -> None:
    fly = FlyClient(token="t0k")
    # ~90% of Fly's published figures (5/s burst 10; 1/s burst 3)
    assert fly.http.limiter.enabled and fly.http.limiter.limit_for("get_machine") == Limit(4.5, 9)
    assert fly.http.limiter.limit_for("update_machine") == Limit(0.9, 2)
    await fly.aclose()
