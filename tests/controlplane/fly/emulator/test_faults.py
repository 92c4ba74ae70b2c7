"""Fault injection: spec grammar, seeded determinism, ambiguous creates that really create, one-shot
and permanent injections with Fly's capacity/quota/host bodies, dropped connections in process and
over real HTTP. Faults never change state unless they are the ambiguous kind."""

from __future__ import annotations

import httpx
import pytest

from controlplane.fly.emulator import FaultSpec, FlyEmulator
from tests.support.emulator import CheckedClient, machine_body, make_app, options


def test_fault_spec_grammar() -> None:
    spec = FaultSpec.parse("5xx=0.1, 429=0.05,ambiguous_create=0.05,latency=0.1:200ms,drop=0.01")
    assert (spec.p_5xx, spec.p_429, spec.p_ambiguous_create, spec.p_latency, spec.latency, spec.p_drop) == (
        0.1,
        0.05,
        0.05,
        0.1,
        0.2,
        0.01,
    )
    assert FaultSpec.parse(str(spec)) == spec
    assert FaultSpec.parse("none").empty and FaultSpec.parse("").empty
    assert FaultSpec.parse("latency=1:1.5s").latency == 1.5
    for bad in ("5xx=2", "bogus=0.1", "latency=0.1", "429", "5xx=x"):
        with pytest.raises(ValueError):
            FaultSpec.parse(bad)


async def _run_series(seed: int) -> list[int]:
    emu = FlyEmulator(options(seed=seed, faults=FaultSpec.parse("5xx=0.2,429=0.1")))
    codes = []
    async with emu.client() as http:
        api = CheckedClient(http)
        for _ in range(40):
            codes.append((await api.get("/v1/apps", params={"org_slug": "test-org"})).status_code)
    return codes


async def test_same_seed_same_faults_different_seed_different_faults() -> None:
    first, second, other = await _run_series(7), await _run_series(7), await _run_series(8)
    assert first == second
    assert first != other
    assert set(first) <= {200, 429, 500, 502, 503} and 200 in first and set(first) - {200}


async def test_random_5xx_never_changes_state() -> None:
    emu = FlyEmulator(options(seed=3, faults=FaultSpec.parse("5xx=0.5")))
    async with emu.client() as http:
        api = CheckedClient(http)
        outcomes = []
        for index in range(30):
            response = await api.post("/v1/apps", json={"app_name": f"a-{index}", "org_slug": "test-org"})
            outcomes.append(response.status_code)
            if response.status_code >= 500:
                assert set(response.json()) >= {"error"}
        assert len(emu.apps) == outcomes.count(201)
        assert outcomes.count(201) not in (0, 30)


async def test_ambiguous_create_really_creates_the_machine() -> None:
    emu = FlyEmulator(options(seed=11, faults=FaultSpec.parse("ambiguous_create=1.0")))
    async with emu.client() as http:
        api = CheckedClient(http, check_requests=True)
        app = await make_app(api)  # only machine creates are ambiguous
        seen: set[str] = set()
        for index in range(12):
            body = machine_body(f"m-{index}")
            body["config"]["metadata"]["control_plane_id"] = f"cp-{index}"
            try:
                response = await http.post(f"/v1/apps/{app}/machines", json=body)
                seen.add(str(response.status_code))
                assert response.status_code in (408, 500, 502, 503)
            except httpx.RemoteProtocolError:
                seen.add("dropped")
            found = await api.get(
                f"/v1/apps/{app}/machines", params={"metadata.control_plane_id": f"cp-{index}"}
            )
            assert len(found.json()) == 1  # the idempotency lookup finds exactly the machine
        assert len(emu.machines_in(app)) == 12
        assert {"408", "dropped"} <= seen and seen & {"500", "502", "503"}


async def test_one_shot_injection_then_normal(api: CheckedClient, emu: FlyEmulator) -> None:
    app = await make_app(api)
    emu.inject("create_machine", "503")
    failed = await api.post(f"/v1/apps/{app}/machines", json=machine_body())
    assert failed.status_code == 503 and emu.machines_in(app) == []
    ok = await api.post(f"/v1/apps/{app}/machines", json=machine_body())
    assert ok.status_code == 200

    emu.inject(r"^/v1/apps/[^/]+/machines/[^/]+$", "408", method="GET", times=2)
    mid = ok.json()["id"]
    codes = [(await api.get(f"/v1/apps/{app}/machines/{mid}")).status_code for _ in range(3)]
    assert codes == [408, 408, 200]

    emu.inject("update_machine", "ambiguous_408")
    config = (await api.get(f"/v1/apps/{app}/machines/{mid}")).json()["config"]
    lost = await api.post(f"/v1/apps/{app}/machines/{mid}", json={"config": config})
    assert lost.status_code == 408
    assert emu.machine(mid).instance_id != ok.json()["instance_id"]  # it was applied anyway


@pytest.mark.parametrize(
    ("op", "kind", "status", "fly_status", "text"),
    [
        ("create_machine", "capacity", 412, "insufficient_capacity", "insufficient resources"),
        ("start_machine", "capacity", 409, None, "insufficient memory"),  # the host, not the region
        ("create_volume", "capacity", 400, "insufficient_capacity", "no capacity"),
        ("create_machine", "org_quota", 403, "quota_exceeded", "over the allowed quota"),
        ("update_machine", "host_disabled", 500, "unknown", "deploys to this host are temporarily disabled"),
        ("create_machine", "volume_host_full", 412, "volume_placement_capacity", "existing volume"),
    ],
)
async def test_permanent_errors_have_fly_bodies(
    api: CheckedClient, emu: FlyEmulator, op: str, kind: str, status: int, fly_status: str | None, text: str
) -> None:
    app = await make_app(api)
    machine = (await api.post(f"/v1/apps/{app}/machines", json=machine_body("base", skip_launch=True))).json()
    emu.inject(op, kind, times=None, region="fra")
    calls = {
        "create_machine": lambda: api.post(f"/v1/apps/{app}/machines", json=machine_body()),
        "start_machine": lambda: api.post(f"/v1/apps/{app}/machines/{machine['id']}/start"),
        "create_volume": lambda: api.post(
            f"/v1/apps/{app}/volumes", json={"name": "data", "region": "fra", "size_gb": 1}
        ),
        "update_machine": lambda: api.post(
            f"/v1/apps/{app}/machines/{machine['id']}", json={"config": machine["config"]}
        ),
    }
    for _ in range(2):  # permanent: stays until cleared
        response = await calls[op]()
        assert response.status_code == status
        assert response.json().get("status") == fly_status and text in response.json()["error"]
    emu.clear_faults()
    assert (await calls[op]()).status_code in (200, 201)


async def test_region_scoped_capacity_allows_fallback(api: CheckedClient, emu: FlyEmulator) -> None:
    app = await make_app(api)
    emu.inject("create_machine", "capacity", times=None, region="fra")
    assert (await api.post(f"/v1/apps/{app}/machines", json=machine_body())).status_code == 412
    assert (await api.post(f"/v1/apps/{app}/machines", json=machine_body(region="ams"))).status_code == 200


async def test_dropped_connection_over_real_http_after_side_effect() -> None:
    emu = FlyEmulator(options())
    async with (
        emu.serve() as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"Authorization": "Bearer test-token"}) as http,
    ):
        assert (
            await http.post("/v1/apps", json={"app_name": "u-1", "org_slug": "test-org"})
        ).status_code == 201
        emu.inject("create_machine", "ambiguous_drop")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/v1/apps/u-1/machines", json=machine_body())
        assert len(emu.machines_in("u-1")) == 1
        emu.inject("get_app", "drop")
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/v1/apps/u-1")
        assert (await http.get("/v1/apps/u-1")).status_code == 200


async def test_latency_fault_is_applied(api: CheckedClient, emu: FlyEmulator) -> None:
    emu.inject("list_apps", "latency", delay=0.05)
    response = await api.get("/v1/apps", params={"org_slug": "test-org"})
    assert response.status_code == 200
    assert emu.faults_fired[-1] == ("list_apps", "latency")
