"""The reconcile queue on both databases: marks (dedupe, explicit vs background, requeue while
leased), claims (explicit first, leases, expiry and takeover, fencing), backoff, parking, and a
property test over random interleavings of two workers."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update

from controlplane.db.models import ReconcileItem
from controlplane.db.queue import Claim, ReconcileQueue, mark_for_reconcile
from controlplane.retry import Backoff
from controlplane.testing import FakeClock


def make_queue(db, clock: FakeClock, **kw) -> ReconcileQueue:
    kw.setdefault("lease_seconds", 30.0)
    return ReconcileQueue(db, clock=clock, rng=random.Random(3), **kw)


async def mark(db, clock: FakeClock, tenant_id: str, reason: str = "x", *, explicit: bool = True) -> None:
    async with db.transaction() as s:
        await mark_for_reconcile(s, tenant_id, reason, explicit=explicit, now=clock.now())


async def item(db, tenant_id: str) -> ReconcileItem:
    async with db.read() as s:
        row = await s.get(ReconcileItem, tenant_id)
        assert row is not None
        s.expunge(row)  # keep its loaded values after the read-only transaction ends
    return row


async def test_marking_a_waiting_tenant_is_a_noop(db, tenant_factory) -> None:
    clock = FakeClock()
    tenant = await tenant_factory()
    for i in range(5):
        await mark(db, clock, tenant.id, f"event {i}")
    async with db.read() as s:
        assert await s.scalar(select(func.count()).select_from(ReconcileItem)) == 1
    claims = await make_queue(db, clock).claim("w1", limit=10)
    assert [c.tenant_id for c in claims] == [tenant.id]


async def test_explicit_mark_overrides_backoff_and_unparks_background_does_not(db, tenant_factory) -> None:
    clock = FakeClock()
    tenant = await tenant_factory()
    later = clock.now() + timedelta(minutes=10)
    await mark(db, clock, tenant.id, "first")
    async with db.transaction() as s:
        await s.execute(update(ReconcileItem).values(due_at=later, attempts=4, parked_reason="quota"))
    await mark(db, clock, tenant.id, "resync", explicit=False)
    row = await item(db, tenant.id)
    assert row.due_at == later and row.parked_reason == "quota" and row.reason == "first"

    await clock.advance(1)
    await mark(db, clock, tenant.id, "user saved a key")
    row = await item(db, tenant.id)
    assert row.due_at == clock.now()
    assert row.parked_reason is None
    assert row.reason == "user saved a key"
    assert row.priority == 1
    assert row.attempts == 4  # backoff history kept, but it no longer blocks the action


async def test_background_mark_makes_an_idle_tenant_due(db, tenant_factory) -> None:
    clock = FakeClock()
    tenant = await tenant_factory()
    queue = make_queue(db, clock)
    await mark(db, clock, tenant.id)
    [claim] = await queue.claim("w1")
    assert await queue.finish(claim)
    assert (await item(db, tenant.id)).due_at is None
    await clock.advance(5)
    await mark(db, clock, tenant.id, "resync", explicit=False)
    row = await item(db, tenant.id)
    assert row.due_at == clock.now() and row.priority == 0 and row.reason == "resync"


async def test_explicit_marks_are_claimed_before_background_ones(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    background = [await tenant_factory() for _ in range(3)]
    for t in background:
        await mark(db, clock, t.id, "resync", explicit=False)
    await clock.advance(1)
    urgent = await tenant_factory()
    await mark(db, clock, urgent.id, "user")  # marked last, claimed first
    [first] = await queue.claim("w1", limit=1)
    assert first.tenant_id == urgent.id
    rest = await queue.claim("w1", limit=10)
    assert {c.tenant_id for c in rest} == {t.id for t in background}


async def test_a_leased_tenant_is_not_claimed_again_and_a_mark_requests_a_rerun(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    [claim] = await queue.claim("w1")
    assert await queue.claim("w2") == []
    await mark(db, clock, tenant.id, "changed during run")
    row = await item(db, tenant.id)
    assert row.requeue is True and row.lease_owner == "w1"
    assert await queue.finish(claim)
    row = await item(db, tenant.id)
    assert row.due_at == clock.now() and row.requeue is False and row.lease_owner is None
    [again] = await queue.claim("w2")
    assert again.tenant_id == tenant.id and again.generation == claim.generation + 1


async def test_expired_lease_is_taken_over_and_the_old_holder_changes_nothing(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock, lease_seconds=30)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    [old] = await queue.claim("zombie")
    assert await queue.heartbeat(old)
    await clock.advance(31)  # the zombie stopped heartbeating
    [new] = await queue.claim("w2")
    assert new.tenant_id == tenant.id and new.generation > old.generation
    assert not await queue.heartbeat(old)
    assert not await queue.finish(old)
    assert await queue.retry(old, "late failure") is None
    assert not await queue.park(old, "late park")
    assert not await queue.release(old)
    row = await item(db, tenant.id)
    assert row.lease_owner == "w2" and row.parked_reason is None and row.last_error is None
    assert await queue.finish(new)
    assert (await item(db, tenant.id)).last_outcome == "done"


async def test_backoff_grows_and_caps(db, tenant_factory) -> None:
    clock = FakeClock()
    backoff = Backoff(initial=2.0, factor=2.0, cap=60.0)
    queue = make_queue(db, clock, backoff=backoff, lease_seconds=600)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    delays = []
    for attempt in range(9):
        [claim] = await queue.claim("w1")
        assert claim.attempts == attempt
        delay = await queue.retry(claim, f"boom {attempt}")
        assert delay is not None
        nominal = backoff.nominal(attempt)
        assert nominal / 2 <= delay <= nominal
        assert (await item(db, tenant.id)).due_at == clock.now() + timedelta(seconds=delay)
        assert await queue.claim("w1") == []  # backing off: not due yet
        delays.append(delay)
        await clock.advance(delay + 0.001)  # past the due time (stored to the microsecond)
    assert max(delays) <= 60.0 and delays[-1] >= 30.0  # capped at 60 (jitter keeps it >= 30)
    row = await item(db, tenant.id)
    assert row.attempts == 9 and row.last_error == "boom 8" and row.last_outcome == "retry"
    [claim] = await queue.claim("w1")
    assert await queue.finish(claim)
    assert (await item(db, tenant.id)).attempts == 0


async def test_server_retry_after_is_honoured_when_longer(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    [claim] = await queue.claim("w1")
    assert await queue.retry(claim, "429", retry_after=120.0) == 120.0


async def test_explicit_mark_bypasses_backoff_and_unparks(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    [claim] = await queue.claim("w1")
    await queue.retry(claim, "boom")
    await mark(db, clock, tenant.id, "operator", explicit=True)
    [claim] = await queue.claim("w1")  # due at once despite the backoff
    assert await queue.park(claim, "quota exceeded in iad")
    row = await item(db, tenant.id)
    assert (
        row.parked_reason == "quota exceeded in iad" and row.due_at is None and row.parked_at == clock.now()
    )
    await mark(db, clock, tenant.id, "resync", explicit=False)
    assert await queue.claim("w1") == []  # background marks never un-park
    await mark(db, clock, tenant.id, "operator start")
    [claim] = await queue.claim("w1")
    assert (await item(db, tenant.id)).parked_reason is None


async def test_an_explicit_mark_during_a_failing_run_wins_over_backoff_and_parking(
    db, tenant_factory
) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    [claim] = await queue.claim("w1")
    await mark(db, clock, tenant.id, "user changed the key")
    assert await queue.retry(claim, "boom") is not None
    assert (await item(db, tenant.id)).due_at == clock.now()
    [claim] = await queue.claim("w1")
    await mark(db, clock, tenant.id, "operator start")
    assert await queue.park(claim, "bad image")
    row = await item(db, tenant.id)
    assert row.parked_reason is None and row.due_at == clock.now()
    [claim] = await queue.claim("w1")
    await mark(db, clock, tenant.id, "resync", explicit=False)  # background: the backoff holds
    delay = await queue.retry(claim, "boom again")
    assert delay is not None and (await item(db, tenant.id)).due_at == clock.now() + timedelta(seconds=delay)


async def test_requeue_after_looks_again_later(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    [claim] = await queue.claim("w1")
    assert await queue.requeue_after(claim, 15)
    assert await queue.seconds_until_due() == 15
    assert await queue.claim("w1") == []
    await clock.advance(15)
    assert [c.tenant_id for c in await queue.claim("w1")] == [tenant.id]


async def test_release_all_leaves_no_lease_held(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    tenants = [await tenant_factory() for _ in range(4)]
    for t in tenants:
        await mark(db, clock, t.id)
    claims = await queue.claim("w1", limit=3)
    assert len(claims) == 3 and len(await queue.holders()) == 3
    assert await queue.release_all("w1") == 3
    assert await queue.holders() == {}
    assert len(await queue.claim("w2", limit=10)) == 4


async def test_stats_count_each_state(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    t = [await tenant_factory() for _ in range(5)]
    for x in t:
        await mark(db, clock, x.id)
    claims = {c.tenant_id: c for c in await queue.claim("w1", limit=4)}
    await queue.retry(claims[t[0].id], "boom")
    await queue.park(claims[t[1].id], "quota")
    await queue.finish(claims[t[2].id])
    stats = await queue.stats()
    assert (stats.due, stats.backing_off, stats.leased, stats.parked, stats.idle) == (1, 1, 1, 1, 1)


async def test_concurrent_claims_never_hand_out_a_tenant_twice(db, tenant_factory) -> None:
    clock = FakeClock()
    tenants = [await tenant_factory() for _ in range(40)]
    for t in tenants:
        await mark(db, clock, t.id)
    queues = [make_queue(db, clock) for _ in range(4)]
    batches = await asyncio.gather(*(q.claim(f"w{i}", limit=15) for i, q in enumerate(queues)))
    claimed = [c.tenant_id for batch in batches for c in batch]
    assert len(claimed) == len(set(claimed)) == 40


# -- a property: random interleavings of two workers ---------------------------------------------
OPS = st.lists(
    st.tuples(
        st.sampled_from(["w1", "w2"]),
        st.sampled_from(
            ["claim", "heartbeat", "finish", "retry", "park", "release", "mark", "bgmark", "sleep"]
        ),
        st.integers(min_value=0, max_value=2),  # which tenant (for marks) / which claim
    ),
    min_size=1,
    max_size=40,
)


async def lease_table(db) -> dict[str, tuple[str | None, object]]:
    async with db.read() as s:
        rows = (await s.execute(select(ReconcileItem))).scalars().all()
        return {r.tenant_id: (r.lease_owner, r.lease_expires_at) for r in rows}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
async def test_two_workers_never_hold_one_tenant(db, tenant_factory, ops) -> None:
    """Whatever the interleaving (claims, heartbeats, terminal writes, marks, lease expiry): a claim
    never hands out a tenant whose lease is live, and only the current holder's writes take effect;
    so two workers never hold one tenant."""
    clock = FakeClock()
    async with db.transaction() as s:
        await s.execute(delete(ReconcileItem))
    tenants = [await tenant_factory() for _ in range(3)]
    queues = {w: make_queue(db, clock, lease_seconds=10) for w in ("w1", "w2")}
    held: dict[str, dict[str, Claim]] = {"w1": {}, "w2": {}}  # what each worker believes it holds
    for t in tenants:
        await mark(db, clock, t.id)
    for worker, op, n in ops:
        queue, mine = queues[worker], held[worker]
        if op == "claim":
            before = await lease_table(db)
            for claim in await queue.claim(worker, limit=2):
                owner, expires = before[claim.tenant_id]
                assert owner is None or expires <= clock.now(), "handed out a live lease"
                mine[claim.tenant_id] = claim
        elif op == "sleep":
            await clock.advance(4 * (n + 1))
        elif op in ("mark", "bgmark"):
            await mark(db, clock, tenants[n].id, op, explicit=op == "mark")
        elif mine:
            tenant_id = sorted(mine)[n % len(mine)]
            claim = mine[tenant_id]
            row_before = await item(db, tenant_id)
            current = row_before.lease_generation == claim.generation and row_before.lease_owner == worker
            if op == "heartbeat":
                ok = await queue.heartbeat(claim)
            elif op == "finish":
                ok = await queue.finish(claim)
            elif op == "retry":
                ok = await queue.retry(claim, "boom") is not None
            elif op == "park":
                ok = await queue.park(claim, "parked")
            else:
                ok = await queue.release(claim)
            assert ok == current, f"{op} by {worker}: wrote={ok} but current holder={current}"
            if op != "heartbeat" or not ok:
                mine.pop(tenant_id)


async def test_a_background_mark_of_a_running_tenant_does_not_ask_for_a_rerun(db, tenant_factory) -> None:
    clock = FakeClock()
    queue = make_queue(db, clock)
    tenant = await tenant_factory()
    await mark(db, clock, tenant.id)
    [claim] = await queue.claim("w1")
    await mark(db, clock, tenant.id, "resync", explicit=False)
    assert (await item(db, tenant.id)).requeue is False
    assert await queue.finish(claim)
    assert (await item(db, tenant.id)).due_at is None
