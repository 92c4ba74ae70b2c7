"""The emulator's own record of machine updates (how many were in flight at once, what each changed)
and failing images (a bad release crash-loops until the machine is updated to another image): the
witnesses of the rollout tests."""

from __future__ import annotations

import copy

from controlplane.fly.emulator import FlyEmulator
from controlplane.fly.emulator.state import UpdateRecord
from controlplane.fly.emulator.updates import max_concurrent
from tests.support.emulator import IMAGE, CheckedClient, machine_body, make_app, options, slow_profile

P = slow_profile(replace=4, gateway_boot=6)
BAD = "ghcr.io/openclaw/openclaw:2026.10.1"


def _record(start: float, end: float) -> UpdateRecord:
    return UpdateRecord(
        machine_id="m", app="a", image_before="x", image_after="y", started_mono=start, ends_mono=end
    )


def test_max_concurrent_counts_overlaps_only() -> None:
    assert max_concurrent([]) == 0
    assert max_concurrent([_record(0, 10), _record(10, 20)]) == 1  # one ends as the next starts
    assert max_concurrent([_record(0, 10), _record(5, 15), _record(6, 7), _record(14, 30)]) == 3
    assert max_concurrent(r for r in [_record(0, 10), _record(1, 2)]) == 2  # any iterable, once


async def test_updates_are_recorded_with_their_span_and_a_failing_image_crash_loops_until_replaced() -> None:
    emu = FlyEmulator(options(latency=P))
    async with emu.client() as http:
        api = CheckedClient(http)
        apps = [await make_app(api, f"u-{n}") for n in range(2)]
        ids = []
        for app in apps:
            ids.append((await api.post(f"/v1/apps/{app}/machines", json=machine_body())).json()["id"])
        emu.advance(60)
        emu.fail_image(BAD, apps=[apps[0]])
        for app, mid in zip(apps, ids, strict=True):
            config = copy.deepcopy(emu.machine(mid).config)
            config["image"] = BAD
            await api.post(f"/v1/apps/{app}/machines/{mid}", json={"config": config})
            emu.advance(1)
        assert [(r.machine_id, r.image_before, r.image_after) for r in emu.updates] == [
            (ids[0], IMAGE, BAD),
            (ids[1], IMAGE, BAD),
        ]
        first = emu.updates[0]
        assert first.ends_mono - first.started_mono == P.replace + P.gateway_boot  # back and booted
        assert emu.max_concurrent_updates() == 2
        assert emu.max_concurrent_updates(since_mono=emu.updates[1].started_mono) == 1
        emu.advance(60)
        assert (await http.get(f"/gateway/{apps[0]}/readyz")).status_code == 502  # crash-looping
        assert (await http.get(f"/gateway/{apps[1]}/readyz")).status_code == 200  # not that app

        config = copy.deepcopy(emu.machine(ids[0]).config)
        config["image"] = IMAGE  # rolled back
        await api.post(f"/v1/apps/{apps[0]}/machines/{ids[0]}", json={"config": config})
        emu.advance(60)
        assert (await http.get(f"/gateway/{apps[0]}/readyz")).status_code == 200
        assert emu.updates[-1].image_before == BAD and emu.updates[-1].image_after == IMAGE

        emu.restore_image(BAD)
        config["image"] = BAD
        await api.post(f"/v1/apps/{apps[0]}/machines/{ids[0]}", json={"config": config})
        emu.advance(60)
        assert (await http.get(f"/gateway/{apps[0]}/readyz")).status_code == 200  # fixed release
