"""wait_for: loops Fly's ≤60 s /wait over 408s to the caller's deadline, follows a replaced version,
404 = destroyed. Virtual time only."""

from __future__ import annotations

import httpx
import pytest
import respx

from controlplane.fly import FlyClient, FlyMachineDestroyed, FlyNotFound, FlyWaitTimeout, wait_for
from controlplane.fly.client import MAX_WAIT_SECONDS, WAIT_READ_SLACK
from tests.support.fly_fakes import FakeClock, ValidatingTransport, error, json_response, machine_json

WAIT = "/apps/a/machines/m1/wait"


def params(sent) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[str]] = {}
    for k, v in sent.params:
        out.setdefault(k, []).append(v)
    return out


class SlowWait:
    """A /wait that takes its full timeout (on the fake clock) and answers 408."""

    def __init__(self, clock: FakeClock, answers: list[httpx.Response] | None = None) -> None:
        self.clock = clock
        self.answers = answers or []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.answers:
            return self.answers.pop(0)
        self.clock.now_monotonic += float(request.url.params["timeout"])
        return error(408, "machine failed to reach desired state, started, currently starting")


async def test_single_wait_pins_version_and_read_timeout(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport
) -> None:
    router.get(WAIT).respond(200, json={"ok": True, "state": "started", "version": "v1"})
    result = await wait_for(fly, "a", "m1", ["started", "stopped"], timeout=30, version="v1")
    assert result.state == "started" and result.version == "v1"
    sent = transport.sent[-1]
    p = params(sent)
    assert p["state"] == ["started", "stopped"] and p["version"] == ["v1"] and p["timeout"] == ["30"]
    # the HTTP read timeout exceeds the server-side wait
    assert sent.timeout["read"] == 30 + WAIT_READ_SLACK


async def test_loops_over_408_until_deadline(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport, clock: FakeClock
) -> None:
    router.get(WAIT).mock(side_effect=SlowWait(clock))
    start = clock.now_monotonic
    with pytest.raises(FlyWaitTimeout) as info:
        await wait_for(fly, "a", "m1", "started", timeout=150, version="v1")
    assert info.value.last_state == "starting"
    timeouts = [int(params(s)["timeout"][0]) for s in transport.calls("GET", WAIT)]
    assert all(t <= MAX_WAIT_SECONDS for t in timeouts)
    assert timeouts[0] == 60 and len(timeouts) == 3
    assert clock.now_monotonic - start == pytest.approx(150, abs=0.01)
    # 408 on /wait is the normal loop, not a retried error: exactly one request per long poll
    assert len(transport.calls("GET", WAIT)) == len(timeouts)


async def test_408_then_success(fly: FlyClient, router: respx.Router, clock: FakeClock) -> None:
    ok = json_response(200, {"ok": True, "state": "started", "version": "v1"})
    router.get(WAIT).mock(
        side_effect=[error(408, "timeout, currently starting"), error(408, "timeout, currently starting"), ok]
    )
    result = await wait_for(fly, "a", "m1", "started", timeout=300, version="v1")
    assert result.state == "started"


async def test_follows_replaced_version(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport
) -> None:
    router.get(WAIT).mock(
        side_effect=[
            error(408, "machine failed to reach desired state, started, currently replaced"),
            json_response(200, {"ok": True, "state": "started", "version": "v2"}),
        ]
    )
    router.get("/apps/a/machines/m1").respond(
        200, json=machine_json("m1", state="replacing", instance_id="v2")
    )
    result = await wait_for(fly, "a", "m1", "started", timeout=120, version="v1")
    assert result.version == "v2"
    versions = [params(s)["version"][0] for s in transport.calls("GET", WAIT)]
    assert versions == ["v1", "v2"]


async def test_replaced_and_already_there(fly: FlyClient, router: respx.Router) -> None:
    router.get(WAIT).respond(400, json={"error": "machine version v1 is replaced"})
    router.get("/apps/a/machines/m1").respond(200, json=machine_json("m1", state="stopped", instance_id="v3"))
    result = await wait_for(fly, "a", "m1", ["settled"], timeout=60, version="v1")
    assert result.state == "stopped" and result.version == "v3"


async def test_404_means_destroyed_when_destroyed_is_a_target(fly: FlyClient, router: respx.Router) -> None:
    route = router.get(WAIT).respond(404, json={"error": "machine not found"})
    result = await wait_for(fly, "a", "m1", "destroyed", timeout=60)
    assert result.ok and result.state == "destroyed" and route.call_count == 1


async def test_404_briefly_tolerated_after_create_then_raised(
    fly: FlyClient, router: respx.Router, clock: FakeClock
) -> None:
    ok = json_response(200, {"ok": True, "state": "started", "version": "v1"})
    router.get(WAIT).mock(side_effect=[error(404, "machine not found"), ok])
    assert (await wait_for(fly, "a", "m1", "started", timeout=60, version="v1")).state == "started"
    router.get(WAIT).mock(return_value=error(404, "machine not found"))
    with pytest.raises(FlyNotFound):
        await wait_for(fly, "a", "m1", "started", timeout=60, version="v1")


async def test_destroyed_while_waiting_for_started(fly: FlyClient, router: respx.Router) -> None:
    router.get(WAIT).respond(
        408, json={"error": "machine failed to reach desired state, started, currently destroyed"}
    )
    with pytest.raises(FlyMachineDestroyed) as info:
        await wait_for(fly, "a", "m1", "started", timeout=300, version="v1")
    assert info.value.last_state == "destroyed"
    assert info.value.terminal and not info.value.transient  # not a timeout: waiting longer is futile


async def test_transport_error_on_wait_is_retried(fly: FlyClient, router: respx.Router) -> None:
    ok = json_response(200, {"ok": True, "state": "stopped"})
    router.get(WAIT).mock(side_effect=[httpx.ReadTimeout("slow"), ok])
    result = await wait_for(fly, "a", "m1", "stopped", timeout=60, version="v9")
    assert result.state == "stopped" and result.version == "v9"


async def test_inconsistent_replaced_answers_do_not_spin(
    fly: FlyClient, router: respx.Router, clock: FakeClock
) -> None:
    # /wait keeps saying "replaced" while GET still shows the same version: back off, then time out.
    router.get(WAIT).respond(
        408, json={"error": "failed to reach desired state, started, currently replaced"}
    )
    router.get("/apps/a/machines/m1").respond(
        200, json=machine_json("m1", state="replacing", instance_id="v1")
    )
    with pytest.raises(FlyWaitTimeout):
        await wait_for(fly, "a", "m1", "started", timeout=20, version="v1")
    assert sum(clock.sleeps) >= 5 and len(clock.sleeps) < 40


async def test_version_is_pinned_by_a_get_when_not_given(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport
) -> None:
    router.get("/apps/a/machines/m1").respond(
        200, json=machine_json("m1", state="stopping", instance_id="v5")
    )
    router.get(WAIT).respond(200, json={"ok": True, "state": "stopped", "version": "v5"})
    result = await wait_for(fly, "a", "m1", "stopped", timeout=60)
    assert result.version == "v5"
    assert params(transport.calls("GET", WAIT)[0])["version"] == ["v5"]


async def test_already_in_state_returns_without_long_poll(
    fly: FlyClient, router: respx.Router, transport: ValidatingTransport
) -> None:
    router.get("/apps/a/machines/m1").respond(200, json=machine_json("m1", state="stopped", instance_id="v5"))
    result = await wait_for(fly, "a", "m1", ["stopped", "suspended"], timeout=60)
    assert result.state == "stopped" and transport.calls("GET", WAIT) == []
