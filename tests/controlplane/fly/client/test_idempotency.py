"""Idempotent create: an ambiguous failure never produces a second machine (invariant 2)."""

from __future__ import annotations

import httpx
import pytest
import respx

from controlplane.fly import (
    CREATE_TAG_KEY,
    CreateMachineRequest,
    FlyAlreadyExists,
    FlyAppOwnedElsewhere,
    FlyBadRequest,
    FlyClient,
    FlyConnectionError,
    FlyServerError,
    MachineConfig,
    create_app_idempotent,
    create_machine_idempotent,
)
from controlplane.fly.idempotency import tag_request
from tests.support.fly_fakes import FakeClock, FakeMachines, error, json_response, machine_json, make_client


def request() -> CreateMachineRequest:
    return CreateMachineRequest(
        name="u-42",
        region="iad",
        min_secrets_version=3,
        config=MachineConfig(image="img:1", metadata={"tenant": "42"}),
    )


@pytest.mark.parametrize(
    "faults",
    [
        ["drop_after"],  # created, then the connection dropped
        ["503_after"],  # created, then a 5xx
        ["408_after"],  # created, then 408
        ["drop_before"],  # nothing happened: confirmed absent → created again, once
        ["503_before", "drop_before", "ok"],
        ["429", "drop_after"],
        [],
    ],
)
async def test_exactly_one_machine_under_ambiguous_failures(faults: list[str]) -> None:
    fake = FakeMachines(faults)
    fly, transport = make_client(fake, FakeClock())
    async with fly:
        machine = await create_machine_idempotent(fly, "a", request(), "tag-1")
    assert len(fake.machines) == 1
    assert machine.id in fake.machines
    assert machine.metadata[CREATE_TAG_KEY] == "tag-1" and machine.metadata["tenant"] == "42"
    assert transport.violations == []


async def test_eventually_consistent_list_is_looked_up_again() -> None:
    fake = FakeMachines(["drop_after"], list_lag=1)  # the first lookup after the drop misses it
    fly, _ = make_client(fake, FakeClock())
    async with fly:
        machine = await create_machine_idempotent(fly, "a", request(), "tag-1")
    assert len(fake.machines) == 1 and machine.id == "m1"


async def test_preexisting_tagged_machine_is_adopted_without_create() -> None:
    fake = FakeMachines()
    fly, _ = make_client(fake, FakeClock())
    async with fly:
        first = await create_machine_idempotent(fly, "a", request(), "tag-1")
        again = await create_machine_idempotent(fly, "a", request(), "tag-1")  # e.g. a crashed worker's retry
    assert first.id == again.id and fake.creates == 1


async def test_lookup_failure_never_creates_again() -> None:
    fake = FakeMachines(["503_after"])

    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "GET":
            return error(500, "list broken")
        return fake(req)

    fly, _ = make_client(handler, FakeClock())
    async with fly:
        with pytest.raises(FlyServerError):
            await create_machine_idempotent(fly, "a", request(), "tag-1", lookup_first=False)
    assert fake.creates == 1


async def test_gives_up_after_max_attempts() -> None:
    fake = FakeMachines(["drop_before"] * 10)
    fly, _ = make_client(fake, FakeClock())
    async with fly:
        with pytest.raises(FlyConnectionError):
            await create_machine_idempotent(fly, "a", request(), "tag-1", max_attempts=3)
    assert fake.creates == 0


async def test_unambiguous_error_raises_immediately(fly: FlyClient, router: respx.Router) -> None:
    router.get("/apps/a/machines").respond(200, json=[])
    create = router.post("/apps/a/machines").mock(return_value=error(400, "invalid image"))
    with pytest.raises(FlyBadRequest):
        await create_machine_idempotent(fly, "a", request(), "tag-1")
    assert create.call_count == 1


async def test_name_exists_adopts_own_machine(fly: FlyClient, router: respx.Router) -> None:
    ours = machine_json("m7", metadata={CREATE_TAG_KEY: "tag-1"})
    router.get("/apps/a/machines").mock(side_effect=[json_response(200, []), json_response(200, [ours])])
    router.post("/apps/a/machines").mock(return_value=error(409, "machine already exists", "already_exists"))
    assert (await create_machine_idempotent(fly, "a", request(), "tag-1")).id == "m7"


async def test_name_exists_but_not_ours(fly: FlyClient, router: respx.Router) -> None:
    router.get("/apps/a/machines").respond(200, json=[machine_json("m8", metadata={CREATE_TAG_KEY: "other"})])
    router.post("/apps/a/machines").mock(return_value=error(409, "already exists", "already_exists"))
    with pytest.raises(FlyAlreadyExists):
        await create_machine_idempotent(fly, "a", request(), "tag-1")


async def test_server_ignoring_the_filter_does_not_make_us_adopt_a_stranger(
    fly: FlyClient, router: respx.Router
) -> None:
    stranger = machine_json("m9", metadata={CREATE_TAG_KEY: "someone-else"})
    router.get("/apps/a/machines").respond(200, json=[stranger])
    router.post("/apps/a/machines").respond(200, json=machine_json("m10", metadata={CREATE_TAG_KEY: "tag-1"}))
    assert (await create_machine_idempotent(fly, "a", request(), "tag-1")).id == "m10"


def test_tag_request_copies_and_refuses_conflicting_tag() -> None:
    original = request()
    tagged = tag_request(original, "t")
    assert tagged.config.metadata == {"tenant": "42", CREATE_TAG_KEY: "t"}
    assert original.config.metadata == {"tenant": "42"}
    with pytest.raises(ValueError):
        tag_request(tagged, "other")
    with pytest.raises(ValueError):
        tag_request(original, "")


# --- apps ---------------------------------------------------------------------------------------
APP = {
    "id": "app1",
    "name": "oc-42",
    "status": "pending",
    "organization": {"slug": "test-org", "name": "Test"},
}


async def test_app_create_sends_spec_body(fly: FlyClient, router: respx.Router, transport) -> None:  # type: ignore[no-untyped-def]
    router.post("/apps").respond(201, json=APP)
    app = await create_app_idempotent(fly, "oc-42", network="oc-42")
    assert app.name == "oc-42"
    assert transport.sent[0].body == {"name": "oc-42", "org_slug": "test-org", "network": "oc-42"}


async def test_app_create_201_without_body(fly: FlyClient, router: respx.Router) -> None:
    router.post("/apps").respond(201)
    app = await fly.create_app("oc-42")
    assert app.name == "oc-42" and app.organization and app.organization.slug == "test-org"


async def test_app_name_taken_by_us_is_adopted(fly: FlyClient, router: respx.Router) -> None:
    router.post("/apps").mock(return_value=error(422, "Name has already been taken", "name_taken"))
    router.get("/apps/oc-42").respond(200, json=APP)
    assert (await create_app_idempotent(fly, "oc-42")).id == "app1"


@pytest.mark.parametrize(
    "lookup", [json_response(200, {**APP, "organization": {"slug": "evil"}}), error(403, "forbidden")]
)
async def test_app_name_taken_elsewhere(fly: FlyClient, router: respx.Router, lookup: httpx.Response) -> None:
    router.post("/apps").mock(return_value=error(422, "Name has already been taken", "name_taken"))
    router.get("/apps/oc-42").mock(return_value=lookup)
    with pytest.raises(FlyAppOwnedElsewhere):
        await create_app_idempotent(fly, "oc-42")


async def test_app_create_ambiguous_then_absent_then_created(fly: FlyClient, router: respx.Router) -> None:
    create = router.post("/apps").mock(
        side_effect=[httpx.RemoteProtocolError("eof"), json_response(201, APP)]
    )
    router.get("/apps/oc-42").respond(404, json={"error": "app not found"})
    assert (await create_app_idempotent(fly, "oc-42")).name == "oc-42"
    assert create.call_count == 2


async def test_app_create_ambiguous_but_created(fly: FlyClient, router: respx.Router) -> None:
    create = router.post("/apps").mock(side_effect=[error(503, "oops")])
    router.get("/apps/oc-42").respond(200, json=APP)
    assert (await create_app_idempotent(fly, "oc-42")).id == "app1"
    assert create.call_count == 1
