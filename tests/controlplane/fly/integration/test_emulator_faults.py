"""Acceptance: create-or-adopt under seeded faults never produces a second machine (invariant 2).

200 tenants provisioned concurrently (app create + machine create) against the emulator on the
``fast`` profile (new apps and machines answer 404 for a moment, lists lag behind) with 10% 5xx,
5% 429 and 5% ambiguous machine creates (the create runs, then the answer is a 408, a 5xx or a
dropped connection). The outer loop plays the reconciler: the create tag is "persisted" once per
tenant before the first call and reused on every retry. App creates share one org-wide bucket
(1/s on Fly), so the client runs on the emulated clock and its pacing sleeps fast-forward it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from controlplane.fly import (
    CREATE_TAG_KEY,
    CreateMachineRequest,
    FlyClient,
    FlyError,
    Machine,
    MachineConfig,
    MachineGuest,
    create_app_idempotent,
    create_machine_idempotent,
)
from tests.support.emulator import emulator

TENANTS = 200


async def provision(fly: FlyClient, tenant: int, tag: str, rng: random.Random) -> Machine:
    app = f"oc-t{tenant:03d}"
    request = CreateMachineRequest(
        region="iad",
        config=MachineConfig(
            image="ghcr.io/openclaw/openclaw:2026.9.6",
            guest=MachineGuest(cpu_kind="shared", cpus=1, memory_mb=512),
            metadata={"tenant": str(tenant)},
        ),
    )
    for attempt in range(12):  # the reconciler's per-tenant retry with backoff
        try:
            await create_app_idempotent(fly, app, network=app, lookup_delay=0.05)
            return await create_machine_idempotent(fly, app, request, tag, lookup_delay=0.05)
        except FlyError as exc:
            if not (exc.transient or exc.ambiguous):
                raise
            await asyncio.sleep(rng.uniform(0.01, 0.05) * (attempt + 1))
    raise AssertionError(f"tenant {tenant} never provisioned")


async def test_200_concurrent_create_or_adopt_end_with_exactly_200_machines(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator("5xx=0.1,429=0.05,ambiguous_create=0.05", seed=1)
    assert emu.world.profile.read_lag > 0 and emu.world.profile.list_consistency > 0  # not "zero"
    fly, transport = make_client(emu, clock=emu.client_clock(jump=True))
    rng = random.Random(1)
    tags = {t: f"tag-{t:03d}-{rng.getrandbits(64):016x}" for t in range(TENANTS)}  # persisted first
    async with fly:
        machines = await asyncio.gather(*(provision(fly, t, tags[t], rng) for t in range(TENANTS)))

    live = [m for m in emu.machines.values() if m.state not in ("destroying", "destroyed")]
    assert len(live) == TENANTS
    per_app = Counter(m.app for m in live)
    assert set(per_app.values()) == {1}, [a for a, n in per_app.items() if n > 1]
    assert len(emu.apps) == TENANTS
    # every tenant got back the one machine that exists for its tag
    by_tag = {m.config["metadata"][CREATE_TAG_KEY]: m.id for m in live}
    assert {tags[t]: machines[t].id for t in range(TENANTS)} == by_tag

    fired = Counter(kind for _, kind in emu.faults_fired)
    ambiguous = sum(n for kind, n in fired.items() if kind.startswith("ambiguous"))
    assert ambiguous >= 3, fired  # the dangerous path was really exercised
    assert sum(n for kind, n in fired.items() if kind in ("429",)) > 0, fired
    creates = len(transport.calls("POST", r"/apps/[^/]+/machines"))
    assert creates > TENANTS  # some creates were repeated, yet no duplicate machine exists


async def test_ambiguous_create_variants_each_adopted(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator()
    fly, _ = make_client(emu)
    async with fly:
        for i, kind in enumerate(("ambiguous_408", "ambiguous_503", "ambiguous_drop")):
            app = f"oc-amb-{i}"
            await create_app_idempotent(fly, app)
            emu.inject("create_machine", kind, times=1)
            machine = await create_machine_idempotent(
                fly,
                app,
                CreateMachineRequest(config=MachineConfig(image="img:1")),
                f"tag-{i}",
                lookup_delay=0.01,
            )
            assert [m.id for m in emu.machines_in(app)] == [machine.id]


async def test_ambiguous_creates_with_a_lagging_list_still_make_no_duplicate(make_client) -> None:  # type: ignore[no-untyped-def]
    """The list is eventually consistent: here it hides a new machine for 1 s, far longer than the
    client's lookup window (2 × 0.05 s). A retried create then meets Fly's duplicate-name check
    (the machine name is derived from the create tag) instead of making a second machine."""
    from controlplane.fly import FlyAlreadyExists
    from controlplane.fly.emulator import EmulatorOptions, FaultSpec, FlyEmulator, LatencyProfile
    from tests.support.emulator import ORG, TOKEN

    emu = FlyEmulator(
        EmulatorOptions(
            latency=LatencyProfile.fast().with_(list_consistency=1.0),
            faults=FaultSpec.parse("ambiguous_create=0.3"),
            seed=3,
            org=ORG,
            token=TOKEN,
            rate_limits=False,
        )
    )
    fly, transport = make_client(emu, rate_limiting=False)  # about list lag, not pacing
    tenants = 40
    rng = random.Random(3)
    tags = {t: f"lag-{t:03d}-{rng.getrandbits(64):016x}" for t in range(tenants)}

    async def provision_lagging(tenant: int) -> Machine:
        app = f"oc-lag{tenant:03d}"
        request = CreateMachineRequest(
            region="iad",
            config=MachineConfig(
                image="ghcr.io/openclaw/openclaw:2026.9.6",
                guest=MachineGuest(cpu_kind="shared", cpus=1, memory_mb=512),
            ),
        )
        for attempt in range(40):  # the reconciler: "check again shortly"
            try:
                await create_app_idempotent(fly, app, network=app, lookup_delay=0.05)
                return await create_machine_idempotent(
                    fly, app, request, tags[tenant], lookup_delay=0.05, lookups=2
                )
            except FlyAlreadyExists:
                await asyncio.sleep(0.1)  # ours, not visible yet: look again later
            except FlyError as exc:
                if not (exc.transient or exc.ambiguous):
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError(f"tenant {tenant} never provisioned")

    async with fly:
        machines = await asyncio.gather(*(provision_lagging(t) for t in range(tenants)))

    live = [m for m in emu.machines.values() if m.state not in ("destroying", "destroyed")]
    assert len(live) == tenants
    assert set(Counter(m.app for m in live).values()) == {1}
    assert {m.id for m in machines} == {m.id for m in live}
    fired = Counter(kind for _, kind in emu.faults_fired)
    assert sum(n for k, n in fired.items() if k.startswith("ambiguous")) >= 5, fired
    creates = len(transport.calls("POST", r"/apps/[^/]+/machines"))
    assert creates > tenants  # retried creates happened, and none produced a second machine
