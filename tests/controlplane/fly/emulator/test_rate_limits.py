"""Fly's published rate limits: 1 req/s burst 3 per action per machine/app, Get Machine 5/s burst 10,
app deletions 100/min, app creates 1/s burst 3 per org; 429 with a Fly error body, Retry-After only
when enabled (Fly does not document it); switchable off."""

from __future__ import annotations

from controlplane.fly.emulator import FlyEmulator
from tests.support.emulator import CheckedClient, machine_body, make_app, options


async def _machine(api: CheckedClient) -> str:
    app = await make_app(api)
    created = await api.post(f"/v1/apps/{app}/machines", json=machine_body())
    return f"/v1/apps/{app}/machines/{created.json()['id']}"


async def test_get_machine_burst_10_then_429_then_refill() -> None:
    # time nearly frozen: no refill; Retry-After is opt-in
    emu = FlyEmulator(options(rate_limits=True, retry_after=True, clock_speed=0.001))
    async with emu.client() as http:
        api = CheckedClient(http)
        base = await _machine(api)
        codes = [(await api.get(base)).status_code for _ in range(11)]
        assert codes == [200] * 10 + [429]
        limited = await api.get(base)
        assert limited.json()["error"] == "rate limit exceeded"
        assert int(limited.headers["retry-after"]) >= 1
        emu.advance(1.0)  # 5 tokens back
        assert [(await api.get(base)).status_code for _ in range(6)] == [200] * 5 + [429]


async def test_actions_are_limited_per_machine_and_per_action() -> None:
    emu = FlyEmulator(options(rate_limits=True, clock_speed=0.001))
    async with emu.client() as http:
        api = CheckedClient(http)
        base = await _machine(api)
        other = (await api.post(base.rsplit("/", 1)[0], json=machine_body("other"))).json()["id"]
        codes = [(await api.post(base + "/stop", json={})).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        # another action on the same machine has its own bucket, as has the same action elsewhere
        assert (await api.get(base + "/events")).status_code == 200
        assert (await api.post(base.rsplit("/", 1)[0] + f"/{other}/stop", json={})).status_code == 200
        emu.advance(1.0)
        assert (await api.post(base + "/stop", json={})).status_code == 200


async def test_app_deletions_100_per_minute() -> None:
    emu = FlyEmulator(options(rate_limits=True, clock_speed=0.001))
    async with emu.client() as http:
        api = CheckedClient(http)
        for index in range(101):
            await make_app(api, f"app-{index}")
            emu.advance(1.0)  # app creates are paced too (1/s per org)
        codes = [(await api.delete(f"/v1/apps/app-{i}")).status_code for i in range(101)]
        assert codes == [202] * 100 + [429]


async def test_app_creates_1_per_second_burst_3_per_org() -> None:
    emu = FlyEmulator(options(rate_limits=True, clock_speed=0.001))
    async with emu.client() as http:
        api = CheckedClient(http)
        body = {"org_slug": "test-org"}
        codes = [
            (await api.post("/v1/apps", json={**body, "app_name": f"burst-{i}"})).status_code
            for i in range(4)
        ]
        assert codes == [201, 201, 201, 429]
        emu.advance(1.0)
        assert (await api.post("/v1/apps", json={**body, "app_name": "burst-9"})).status_code == 201


async def test_no_retry_after_by_default_and_limits_switched_off() -> None:
    emu = FlyEmulator(options(rate_limits=True, clock_speed=0.001))
    async with emu.client() as http:
        api = CheckedClient(http)
        base = await _machine(api)
        codes = [(await api.get(base)).status_code for _ in range(11)]
        assert codes[-1] == 429
        assert "retry-after" not in (await api.get(base)).headers
        emu.set_rate_limits(False)
        assert [(await api.get(base)).status_code for _ in range(50)] == [200] * 50
