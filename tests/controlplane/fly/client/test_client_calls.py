"""What each client call sends (validated against the OpenAPI spec by the fixture) and parses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import respx
from pydantic import SecretStr

from controlplane.fly import (
    CreateVolumeRequest,
    FlyClient,
    Machine,
    MachineConfig,
    OrgMachineQuery,
    OrgMachineScan,
    UpdateMachineRequest,
)
from controlplane.fly.transport import LEASE_NONCE_HEADER
from tests.support.fly_fakes import ValidatingTransport, error, json_response, machine_json

FULL_CONFIG = {
    "image": "img:1",
    "env": {"A": "1"},
    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
    "metadata": {"cp_create_tag": "t"},
    "services": [
        {
            "protocol": "tcp",
            "internal_port": 8080,
            "autostop": True,
            "autostart": True,
            "ports": [{"port": 443, "handlers": ["tls", "http"]}],
            "concurrency": {"type": "requests", "soft_limit": 20},
        }
    ],
    "checks": {"startupz": {"type": "http", "port": 8080, "path": "/startupz", "interval": "15s"}},
    "restart": {"policy": "on-failure", "max_retries": 10},
    "mounts": [{"volume": "vol_1", "path": "/data"}],
    "stop_config": {"signal": "SIGINT", "timeout": "10s"},
    "dns": {"skip_registration": False},
    "files": [{"guest_path": "/etc/openclaw.json", "raw_value": "e30="}],
}


async def test_update_round_trips_the_whole_config(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport
) -> None:
    router.get("/apps/a/machines/m1").respond(200, json={**machine_json("m1"), "config": FULL_CONFIG})
    router.post("/apps/a/machines/m1").respond(
        200, json={**machine_json("m1", instance_id="v2"), "config": FULL_CONFIG}
    )
    machine = await fly.get_machine("a", "m1")
    assert machine.config is not None
    machine.config.image = "img:2"
    updated = await fly.update_machine(
        "a",
        "m1",
        UpdateMachineRequest(
            config=machine.config, current_version="v1", min_secrets_version=4, skip_launch=True
        ),
        nonce="n1",
    )
    sent = transport.sent[-1]
    expected = {**FULL_CONFIG, "image": "img:2"}
    expected["services"] = [{**FULL_CONFIG["services"][0], "autostop": "stop"}]  # bool → string for requests
    assert sent.body == {
        "config": expected,
        "current_version": "v1",
        "min_secrets_version": 4,
        "skip_launch": True,
    }
    assert sent.headers[LEASE_NONCE_HEADER] == "n1"
    assert updated.current_version == "v2"


def test_machine_model_keeps_unknown_fields_and_helpers() -> None:
    machine = Machine.model_validate(
        {
            **machine_json("m1", metadata={"k": "v"}),
            "brand_new_field": {"x": 1},
            "checks": [{"name": "a", "status": "passing"}],
        }
    )
    assert machine.model_extra == {"brand_new_field": {"x": 1}}
    assert machine.metadata == {"k": "v"} and machine.healthy
    assert not Machine.model_validate(machine_json("m2")).healthy  # no check results yet


async def test_list_machines_filters(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport
) -> None:
    router.get("/apps/a/machines").respond(200, json=[machine_json("m1")])
    machines = await fly.list_machines(
        "a",
        metadata={"cp_create_tag": "t-1"},
        state=["started", "stopped"],
        include_deleted=False,
        region="iad",
    )
    assert [m.id for m in machines] == ["m1"]
    assert dict(transport.sent[-1].params) == {
        "include_deleted": "false",
        "region": "iad",
        "state": "started,stopped",
        "metadata.cp_create_tag": "t-1",
    }


async def test_machine_actions(fly: FlyClient, router: respx.Router, transport: ValidatingTransport) -> None:
    router.post("/apps/a/machines/m1/start").respond(
        200, json={"previous_state": "stopped", "migrated": False}
    )
    router.post("/apps/a/machines/m1/restart").respond(200, json={"ok": True})
    router.post("/apps/a/machines/m1/suspend").respond(200, json={"ok": True})
    router.post("/apps/a/machines/m1/stop").respond(200, json={"ok": True})
    router.delete("/apps/a/machines/m1").respond(200, json={"ok": True})
    router.get("/apps/a/machines/m1/events").respond(
        200, json=[{"id": "e1", "type": "start", "status": "started", "source": "user", "timestamp": 1}]
    )
    assert (await fly.start_machine("a", "m1", nonce="n")).previous_state == "stopped"
    await fly.restart_machine("a", "m1", signal="SIGTERM", timeout="10s", nonce="n")
    await fly.suspend_machine("a", "m1", nonce="n")
    await fly.stop_machine("a", "m1", signal="SIGTERM", timeout="30s", nonce="n")
    await fly.destroy_machine("a", "m1", force=True, nonce="n")
    events = await fly.list_events("a", "m1", limit=500)
    assert events[0].type == "start"
    by_path = {(s.method, s.path): s for s in transport.sent}
    assert by_path[("POST", "/apps/a/machines/m1/restart")].params == [
        ("signal", "SIGTERM"),
        ("timeout", "10s"),
    ]
    assert by_path[("POST", "/apps/a/machines/m1/stop")].body == {"signal": "SIGTERM", "timeout": "30s"}
    assert by_path[("DELETE", "/apps/a/machines/m1")].params == [("force", "true")]
    assert by_path[("GET", "/apps/a/machines/m1/events")].params == [("limit", "50")]
    assert all(s.headers[LEASE_NONCE_HEADER] == "n" for s in transport.sent if s.method != "GET")


async def test_secrets(fly: FlyClient, router: respx.Router, transport: ValidatingTransport) -> None:
    router.post("/apps/a/secrets").respond(
        200, json={"secrets": [{"name": "K", "digest": "d"}], "version": 5}
    )
    router.get("/apps/a/secrets").respond(
        200, json={"secrets": [{"name": "K", "digest": "d", "created_at": "x"}]}
    )
    router.delete("/apps/a/secrets/OLD").respond(200, json={"version": 6})
    router.delete("/apps/a/secrets/GONE").mock(return_value=error(404, "secret not found"))
    update = await fly.set_secrets("a", {"K": SecretStr("sk-live-value"), "L": "plain"})
    assert update.version == 5 and update.secrets[0].name == "K"
    assert transport.sent[0].body == {"values": {"K": "sk-live-value", "L": "plain"}}
    assert "sk-live-value" not in repr(update)
    assert [s.name for s in await fly.list_secrets("a", min_version=5)] == ["K"]
    assert transport.sent[1].params == [("min_version", "5")]
    assert await fly.unset_secrets("a", ["OLD", "GONE"]) == 6
    with pytest.raises(ValueError):
        await fly.set_secrets("a", {})


async def test_volumes_and_apps(fly: FlyClient, router: respx.Router, transport: ValidatingTransport) -> None:
    vol = {"id": "vol_1", "name": "data", "region": "iad", "size_gb": 1, "state": "created"}
    router.post("/apps/a/volumes").respond(200, json=vol)
    router.get("/apps/a/volumes/vol_1").respond(200, json=vol)
    router.get("/apps/a/volumes").respond(200, json=[vol])
    router.delete("/apps/a/volumes/vol_1").respond(200, json=vol)
    router.get("/apps").respond(200, json={"total_apps": 1, "apps": [{"name": "a"}]})
    created = await fly.create_volume(
        "a", CreateVolumeRequest(name="data", region="iad", size_gb=1, encrypted=True)
    )
    assert created.id == "vol_1"
    assert transport.sent[0].body == {"name": "data", "region": "iad", "size_gb": 1, "encrypted": True}
    assert (await fly.get_volume("a", "vol_1")).size_gb == 1
    assert [v.id for v in await fly.list_volumes("a")] == ["vol_1"]
    assert await fly.delete_volume("a", "vol_1")
    assert [a.name for a in await fly.list_apps()] == ["a"]
    assert transport.sent[-1].params == [("org_slug", "test-org")]


async def test_metadata_calls(fly: FlyClient, router: respx.Router, transport: ValidatingTransport) -> None:
    router.get("/apps/a/machines/m1/metadata").respond(200, json={"k": "v"})
    router.post("/apps/a/machines/m1/metadata/k").respond(204)
    router.delete("/apps/a/machines/m1/metadata/k").mock(return_value=error(404, "not found"))
    assert await fly.get_metadata("a", "m1") == {"k": "v"}
    await fly.set_metadata("a", "m1", "k", "v2")
    await fly.delete_metadata("a", "m1", "k")  # already absent is fine
    assert transport.sent[1].body == {"value": "v2"}


@pytest.mark.parametrize("bad", ["a/../b", "..", "", "a b", "a?x=1", "a#b"])
async def test_unsafe_path_segments_are_refused(
    fly: FlyClient, transport: ValidatingTransport, bad: str
) -> None:
    with pytest.raises(ValueError):
        await fly.get_app(bad)
    with pytest.raises(ValueError):
        await fly.get_machine("a", bad)
    assert transport.sent == []


# --- org listing ------------------------------------------------------------------------------
def org_page(ids: list[str], cursor: str | None, **extra: object) -> dict[str, object]:
    return {
        "machines": [
            {
                "id": i,
                "app_name": f"app-{i}",
                "state": "started",
                "version": "v",
                "config": {"image": "img", "metadata": {"tenant": i}},
            }
            for i in ids
        ],
        "next_cursor": cursor,
        "last_updated_at": "2026-11-21T10:00:00Z",
        **extra,
    }


async def test_org_listing_follows_cursor_and_dedupes(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport
) -> None:
    router.get("/orgs/test-org/machines").mock(
        side_effect=[
            json_response(200, org_page(["m1", "m2"], "c1")),
            json_response(200, org_page([], "c2")),  # short/empty pages are allowed (limit is advisory)
            json_response(200, org_page(["m2", "m3"], "", error_regions=["syd"])),
        ]
    )
    since = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    scan = OrgMachineScan(fly, OrgMachineQuery(updated_after=since, state="started"))
    seen = [m.id async for m in scan]
    assert seen == ["m1", "m2", "m3"]
    assert scan.pages == 3 and scan.error_regions == {"syd"} and scan.partial
    assert scan.last_updated_at == "2026-11-21T10:00:00Z"
    first, second, _ = (dict(s.params) for s in transport.sent)
    assert first == {
        "state": "started",
        "summary": "true",
        "updated_after": "2026-11-21T09:00:00Z",
        "limit": "1000",
    }
    assert second["cursor"] == "c1"


async def test_org_listing_stops_on_repeated_cursor(fly: FlyClient, router: respx.Router) -> None:
    router.get("/orgs/test-org/machines").mock(return_value=json_response(200, org_page(["m1"], "same")))
    scan = OrgMachineScan(fly)
    assert [m.id for m in await scan.collect()] == ["m1"]
    assert scan.pages == 2 and not scan.complete


def test_updated_after_must_be_aware() -> None:
    from controlplane.fly.models import rfc3339

    with pytest.raises(ValueError):
        rfc3339(datetime(2026, 1, 1))


def test_machine_config_requires_image() -> None:
    with pytest.raises(ValueError):
        MachineConfig.model_validate({"env": {}})


async def test_unreadable_answers_become_fly_errors(fly: FlyClient, router: respx.Router) -> None:
    from controlplane.fly import FlyUnexpectedResponse

    router.get("/apps/a/machines/m1").respond(200, json={"state": "started", "env_secret": "sk-live-xyz"})
    router.get("/apps/a/machines").respond(200, json={"not": "a list"})
    router.get("/apps/a").respond(200, text="<html>proxy error</html>")
    with pytest.raises(FlyUnexpectedResponse) as info:
        await fly.get_machine("a", "m1")
    assert "id" in str(info.value) and "sk-live-xyz" not in str(info.value)
    assert info.value.request_id is None or isinstance(info.value.request_id, str)
    with pytest.raises(FlyUnexpectedResponse):
        await fly.list_machines("a")
    with pytest.raises(FlyUnexpectedResponse):
        await fly.get_app("a")


def test_incomplete_config_metadata_fallback_and_update_helper_refuses() -> None:
    from controlplane.fly import FlyIncompleteConfig, Machine, OrgMachine, UpdateMachineRequest

    unreachable = Machine.model_validate(
        {
            "id": "m1",
            "state": "started",
            "instance_id": "v1",
            "host_status": "unreachable",
            "incomplete_config": {"image": "img:1", "metadata": {"tenant": "42"}},
        }
    )
    assert unreachable.config is None and unreachable.metadata == {"tenant": "42"} and not unreachable.host_ok
    with pytest.raises(FlyIncompleteConfig, match="no complete config"):
        UpdateMachineRequest.from_machine(unreachable)
    listed = OrgMachine.model_validate({"id": "m1", "incomplete_config": {"metadata": {"tenant": "42"}}})
    assert listed.metadata == {"tenant": "42"}

    ok = Machine.model_validate(
        {"id": "m2", "instance_id": "v7", "config": {"image": "img:1", "env": {"A": "1"}}}
    )
    request = UpdateMachineRequest.from_machine(ok, min_secrets_version=3)
    assert request.current_version == "v7" and request.config.env == {"A": "1"}
    request.config.env["A"] = "2"
    assert ok.config is not None and ok.config.env == {"A": "1"}  # a copy: the read stays untouched
