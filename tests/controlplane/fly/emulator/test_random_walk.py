"""Property: any sequence of machine operations yields only Fly status codes with spec-valid bodies,
known states, and a state machine that never answers 5xx on its own (no faults configured)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.fly.emulator import FlyEmulator
from controlplane.fly.emulator.state import SETTLED_STATES, TRANSIENT_STATES
from tests.support.emulator import CheckedClient, machine_body, make_app, options, slow_profile

OPS = (
    "start",
    "stop",
    "suspend",
    "restart",
    "update",
    "destroy",
    "force_destroy",
    "lease",
    "release",
    "advance",
    "get",
    "wait",
)
ALLOWED = {200, 201, 400, 404, 408, 409, 412}


async def _walk(ops: list[str]) -> None:
    emu = FlyEmulator(
        options(latency=slow_profile(create=1, start=2, stop=2, replace=3, destroy=1, destroyed_retention=2))
    )
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        machine = (await api.post(f"/v1/apps/{app}/machines", json=machine_body())).json()
        base = f"/v1/apps/{app}/machines/{machine['id']}"
        nonce: str | None = None
        for op in ops:
            headers = {"fly-machine-lease-nonce": nonce} if nonce else None
            if op == "advance":
                emu.advance(1.5)
                continue
            if op == "get":
                response = await api.get(base)
            elif op == "wait":
                response = await api.get(base + "/wait", params={"state": "settled", "timeout": 1})
            elif op == "update":
                current = await api.get(base)
                if current.status_code != 200:
                    continue
                response = await api.post(base, json={"config": current.json()["config"]}, headers=headers)
            elif op == "stop":
                response = await api.post(base + "/stop", json={}, headers=headers)
            elif op in ("destroy", "force_destroy"):
                params = {"force": "true"} if op == "force_destroy" else None
                response = await api.delete(base, params=params, headers=headers)
            elif op == "lease":
                response = await api.post(base + "/lease", json={"ttl": 60}, headers=headers)
                if response.status_code == 201:
                    nonce = response.json()["data"]["nonce"]
            elif op == "release":
                # without a nonce the request itself is invalid per the spec (header required): expect 400
                response = await api.delete(base + "/lease", headers=headers, check=nonce is not None)
                if response.status_code == 200:
                    nonce = None
            else:
                response = await api.post(f"{base}/{op}", headers=headers)
            assert response.status_code in ALLOWED, (op, response.status_code, response.text)
            if op == "get" and response.status_code == 200:
                assert response.json()["state"] in SETTLED_STATES | TRANSIENT_STATES


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([op for op in OPS if op != "wait"]), min_size=1, max_size=25))
def test_random_operation_sequences_stay_within_fly_semantics(ops: list[str]) -> None:
    asyncio.run(_walk(ops))


def test_wait_in_a_sequence() -> None:
    asyncio.run(_walk(["get", "wait", "stop", "advance", "advance", "wait", "destroy", "advance", "get"]))
