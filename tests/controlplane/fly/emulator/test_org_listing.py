"""GET /v1/orgs/{org}/machines: cursor paging over every app, updated_after, filters, error_regions."""

from __future__ import annotations

from controlplane.fly.emulator import FlyEmulator
from controlplane.fly.emulator.clock import rfc3339
from tests.support.emulator import CheckedClient, machine_body, make_app, options


async def _fleet(api: CheckedClient, apps: int, per_app: int) -> list[str]:
    ids = []
    for index in range(apps):
        app = await make_app(api, f"tenant-{index}")
        for number in range(per_app):
            body = machine_body(f"m{number}", region="ams" if number % 2 else "fra")
            ids.append((await api.post(f"/v1/apps/{app}/machines", json=body)).json()["id"])
    return ids


async def test_paging_visits_every_machine_once(api: CheckedClient) -> None:
    ids = await _fleet(api, apps=7, per_app=3)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"summary": "true", "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/orgs/test-org/machines", params=params)).json()
        pages += 1
        seen += [m["id"] for m in page["machines"]]
        assert all(set(m) >= {"app_name", "id", "state", "version", "config"} for m in page["machines"])
        assert all(set(m["config"]) == {"guest", "image", "metadata"} for m in page["machines"])
        if page["machines"]:
            assert page["last_machine_id"] == page["machines"][-1]["id"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert pages == 6  # 21 machines, 4 per page


async def test_updated_after_returns_only_changes(api: CheckedClient, emu: FlyEmulator) -> None:
    await _fleet(api, apps=3, per_app=2)
    first = (await api.get("/v1/orgs/test-org/machines", params={"limit": 1000})).json()
    assert len(first["machines"]) == 6
    emu.advance(5)
    mark = rfc3339(emu.clock.wall())
    emu.advance(5)
    victim = first["machines"][0]
    stopped = await api.post(f"/v1/apps/{victim['app_name']}/machines/{victim['id']}/stop", json={})
    assert stopped.status_code == 200
    changed = (await api.get("/v1/orgs/test-org/machines", params={"updated_after": mark})).json()
    assert [m["id"] for m in changed["machines"]] == [victim["id"]]
    assert changed["machines"][0]["state"] == "stopped"
    assert changed["last_updated_at"] >= mark
    bad = await api.get("/v1/orgs/test-org/machines", params={"updated_after": "yesterday"})
    assert bad.status_code == 400


async def test_filters_error_regions_and_unknown_org(api: CheckedClient, emu: FlyEmulator) -> None:
    await _fleet(api, apps=2, per_app=4)
    ams = (await api.get("/v1/orgs/test-org/machines", params={"region": "ams"})).json()
    assert {m["region"] for m in ams["machines"]} == {"ams"} and len(ams["machines"]) == 4
    emu.set_error_regions(["fra"])
    partial = (await api.get("/v1/orgs/test-org/machines")).json()
    assert partial["error_regions"] == ["fra"] and len(partial["machines"]) == 4
    assert (await api.get("/v1/orgs/other-org/machines")).status_code == 404


async def test_list_is_eventually_consistent_with_realistic_lag() -> None:
    from tests.support.emulator import slow_profile

    emu = FlyEmulator(options(latency=slow_profile(list_consistency=2.0)))
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        created = (await api.post(f"/v1/apps/{app}/machines", json=machine_body())).json()
        assert (await api.get(f"/v1/apps/{app}/machines")).json() == []
        assert (await api.get(f"/v1/apps/{app}/machines/{created['id']}")).status_code == 200
        emu.advance(2.0)
        assert [m["id"] for m in (await api.get(f"/v1/apps/{app}/machines")).json()] == [created["id"]]
