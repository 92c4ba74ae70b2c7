"""The key grace of migrated users: reminders on days 7, 14, 21 and 28 and the stop once the 30 days
are over happen exactly once each -- on a fake clock, with two scheduler processes (two engines,
two connection pools) calling the job at the same moments; a key ends the grace; the reminders
reach the operator's mailer signed, retried, once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from agents_config.catalog import PlanCatalog, load_catalog
from controlplane.billing.keygrace import KEY_GRACE, run_key_grace_once, start_key_grace
from controlplane.billing.notices import SIGNATURE_HEADER, MailerClient, deliver_notices_once
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.service import KeyService
from controlplane.byok.verdicts import Verdict, message_for
from controlplane.db.models import Announcement, AuditLog, Banner, BillingNotice, ReconcileItem, Tenant
from controlplane.db.session import Database, create_engine
from controlplane.enums import BannerKind, DesiredPower, KeyVerdict
from controlplane.retry import Backoff
from controlplane.testing import FakeClock
from controlplane.vault import Vault
from tests.support.billing import add_usable_key, decision_for
from tests.support.byok_fakes import valid_key
from workers.decide import Target

DAY = 86400.0


def with_platform_fallback(catalog: PlanCatalog) -> PlanCatalog:
    """The default catalog's pro plan with a platform fallback: the key grace runs on it."""
    pro = catalog.plans["pro"]
    models = pro.models.model_copy(update={"platform_fallback": "anthropic/claude-haiku-4-5"})
    return catalog.model_copy(
        update={"plans": {**catalog.plans, "pro": pro.model_copy(update={"models": models})}}
    )


MAILER_SECRET = "mailer-" + "signing0secret0for0tests"


async def _tenant_in_grace(db: Database, clock: FakeClock, external_id: str = "migrated") -> str:
    async with db.transaction() as s:
        tenant = Tenant(
            external_id=external_id, plan="pro", region="iad", stripe_subscription_id=f"sub_{external_id}"
        )
        s.add(tenant)
        await s.flush()
        assert await start_key_grace(s, tenant, clock.now())
        return tenant.id


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_reminders_and_the_stop_happen_once_each_across_two_schedulers(db, empty_database) -> None:
    clock = FakeClock()
    tenant_id = await _tenant_in_grace(db, clock)
    started = clock.now()
    # The second "process": its own engine and pool on the same database.
    other = Database(create_engine(empty_database["url"], pg_schema=empty_database["pg_schema"]))
    fired: dict[str, list[float]] = {"reminders": [], "stopped": []}
    try:
        for _ in range(2 * 35):  # every 12 hours for 35 days, both schedulers at the same moment
            now = clock.now()
            reports = await asyncio.gather(run_key_grace_once(db, now), run_key_grace_once(other, now))
            elapsed = (now - started).total_seconds() / DAY
            fired["reminders"] += [elapsed] * sum(r.reminders for r in reports)
            fired["stopped"] += [elapsed] * sum(r.stopped for r in reports)
            clock.now_monotonic += DAY / 2
    finally:
        await other.dispose()

    assert fired == {"reminders": [7.0, 14.0, 21.0, 28.0], "stopped": [30.0]}
    async with db.transaction() as s:
        notices = (await s.scalars(select(BillingNotice).order_by(BillingNotice.created_at))).all()
        assert [(n.kind, n.payload.get("day")) for n in notices] == [
            ("key_grace.reminder", 7),
            ("key_grace.reminder", 14),
            ("key_grace.reminder", 21),
            ("key_grace.reminder", 28),
            ("key_grace.expired", None),
        ]
        announcements = (
            await s.scalars(select(Announcement.kind).where(Announcement.tenant_id == tenant_id))
        ).all()
        assert sorted(announcements) == ["key_grace_expired"] + ["key_grace_reminder"] * 4
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None and tenant.key_grace_until == started + KEY_GRACE
        mark = await s.get(ReconcileItem, tenant_id)
        assert mark is not None and mark.reason == "key grace over"
        banners = {
            b.kind: b.active for b in await s.scalars(select(Banner).where(Banner.tenant_id == tenant_id))
        }
        assert banners == {BannerKind.key_missing: True, BannerKind.grace_period_ending: False}
        actions = (await s.scalars(select(AuditLog.action).where(AuditLog.tenant_id == tenant_id))).all()
        assert actions.count("billing.key_grace_reminder") == 4
        assert actions.count("billing.key_grace_expired") == 1
        assert actions.count("banner.raised") == 2  # grace_period_ending on day 28, key_missing on day 30
        expired = await s.scalar(select(AuditLog).where(AuditLog.action == "billing.key_grace_expired"))
        assert expired is not None and expired.actor == "system" and expired.after["key_missing"] is True
    # The reconciler's decision: on the platform key during the grace, stopped (key missing) after it.
    catalog = with_platform_fallback(load_catalog())
    during = await decision_for(db, catalog, tenant_id, started + timedelta(days=29), platform=("anthropic",))
    assert during.target is Target.running and during.look_again_at == started + KEY_GRACE
    after = await decision_for(db, catalog, tenant_id, clock.now(), platform=("anthropic",))
    assert after.target is Target.absent and after.key_missing


async def test_a_scheduler_that_was_down_sends_only_the_latest_reminder(db) -> None:
    clock = FakeClock()
    await _tenant_in_grace(db, clock)
    clock.now_monotonic += 15 * DAY
    report = await run_key_grace_once(db, clock.now())
    assert report.reminders == 1
    async with db.transaction() as s:
        notices = {n.payload["day"]: n for n in await s.scalars(select(BillingNotice))}
    assert set(notices) == {7, 14}
    assert (
        notices[7].payload["skipped"] is True and notices[7].delivered_at is not None
    )  # recorded, never mailed
    assert notices[14].payload["skipped"] is False and notices[14].delivered_at is None  # to be mailed


async def test_a_usable_key_ends_the_grace_and_the_stop_never_comes(db) -> None:
    clock = FakeClock()
    tenant_id = await _tenant_in_grace(db, clock)
    clock.now_monotonic += 8 * DAY
    assert (await run_key_grace_once(db, clock.now())).reminders == 1
    await add_usable_key(db, tenant_id)
    report = await run_key_grace_once(db, clock.now())
    assert (report.ended, report.reminders) == (1, 0)
    clock.now_monotonic += 30 * DAY
    report = await run_key_grace_once(db, clock.now())
    assert (report.reminders, report.stopped) == (0, 0)
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert (
            tenant is not None
            and tenant.key_grace_until is None
            and tenant.desired_power is DesiredPower.running
        )


class _OkValidator:
    async def validate(self, provider: str, key: ProviderKeyValue, *, region: str | None = None) -> Verdict:
        return Verdict(provider=provider, verdict=KeyVerdict.ok, message=message_for(KeyVerdict.ok, provider))


async def test_saving_a_key_through_the_key_service_ends_an_expired_grace(db, vault: Vault) -> None:
    clock = FakeClock()
    tenant_id = await _tenant_in_grace(db, clock)
    clock.now_monotonic += 31 * DAY
    assert (await run_key_grace_once(db, clock.now())).stopped == 1
    service = KeyService(db, vault, _OkValidator(), clock=clock.now)  # type: ignore[arg-type]
    await service.save(tenant_id, "anthropic", valid_key("anthropic"), actor="api")
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None and tenant.key_grace_until is None
        assert tenant.desired_power is DesiredPower.running
        banner = await s.scalar(
            select(Banner).where(Banner.tenant_id == tenant_id, Banner.kind == BannerKind.key_missing)
        )
        assert banner is not None and banner.active is False
        ended = await s.scalar(select(AuditLog).where(AuditLog.action == "billing.key_grace_ended"))
        assert ended is not None and ended.actor == "api"


async def test_notices_reach_the_mailer_signed_retried_and_once(db) -> None:
    clock = FakeClock()
    await _tenant_in_grace(db, clock, "mail-1")
    await _tenant_in_grace(db, clock, "mail-2")
    clock.now_monotonic += 7 * DAY
    await run_key_grace_once(db, clock.now())
    received: list[httpx.Request] = []
    fail = {"left": 1}

    def mailer(request: httpx.Request) -> httpx.Response:
        received.append(request)
        if fail["left"]:
            fail["left"] -= 1
            return httpx.Response(503)
        return httpx.Response(202)

    client = MailerClient("https://mailer.example/hook", MAILER_SECRET, transport=httpx.MockTransport(mailer))
    backoff = Backoff(initial=30.0, cap=3600.0, jitter=False)
    try:
        first = await deliver_notices_once(db, client, clock.now(), owner="w1", backoff=backoff)
        assert (first.sent, first.failed) == (1, 1)
        assert (
            await deliver_notices_once(db, client, clock.now(), owner="w2", backoff=backoff)
        ).sent == 0  # backing off
        clock.now_monotonic += 30
        second = await deliver_notices_once(db, client, clock.now(), owner="w2", backoff=backoff)
        assert (second.sent, second.failed) == (1, 0)
        assert (await deliver_notices_once(db, client, clock.now(), owner="w1", backoff=backoff)).sent == 0
    finally:
        await client.aclose()

    assert len(received) == 3
    ids = [r.headers["Idempotency-Key"] for r in received]
    assert ids[0] in ids[1:] or ids[1] in ids[2:]  # the failed one was sent again with the same id
    for request in received:
        timestamp, signature = (
            part.split("=", 1)[1] for part in request.headers[SIGNATURE_HEADER].split(",")
        )
        expected = hmac.new(
            MAILER_SECRET.encode(), f"{timestamp}.".encode() + request.content, hashlib.sha256
        )
        assert hmac.compare_digest(signature, expected.hexdigest())
        body = json.loads(request.content)
        assert body["kind"] == "key_grace.reminder" and body["payload"]["day"] == 7
        assert MAILER_SECRET not in request.content.decode()
    assert await _count(db, BillingNotice, BillingNotice.delivered_at.is_(None)) == 0


async def test_without_a_mailer_nothing_is_sent_and_notices_wait(db) -> None:
    clock = FakeClock()
    await _tenant_in_grace(db, clock)
    clock.now_monotonic += 7 * DAY
    await run_key_grace_once(db, clock.now())
    report = await deliver_notices_once(db, None, clock.now(), owner="w1")
    assert (report.sent, report.failed) == (0, 0)
    assert await _count(db, BillingNotice, BillingNotice.delivered_at.is_(None)) == 1
