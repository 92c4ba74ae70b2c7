"""Status (desired vs observed, drift, reconcile progress), model choice, banners and announcements
through the API; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controlplane.dashboard.model_choice import model_choice
from controlplane.db.models import Announcement, Banner, ReconcileItem, Tenant
from controlplane.db.queue import ReconcileQueue
from controlplane.enums import BannerKind, KeyStatus, LifecycleState, RoutingStrategy
from tests.support.agent_configs import default_catalog, platform_catalog
from tests.support.api import BASE, ApiHarness


async def test_status_shows_desired_against_observed_and_the_reconcile_queue(api: ApiHarness) -> None:
    tenant = await api.tenant(
        "st", plan="power", region="fra", image_pin="ghcr.io/openclaw/openclaw:2026.9.5"
    )
    fresh = (await api.client.get(f"{BASE}/st/status")).json()
    assert (fresh["lifecycle_state"], fresh["plan"], fresh["region"]) == ("pending", "power", "fra")
    assert fresh["image"] == "ghcr.io/openclaw/openclaw:2026.9.5"
    assert fresh["machine"] == {
        "app_name": None,
        "machine_id": None,
        "state": None,
        "observed_at": None,
        "image": None,
    }
    assert fresh["drift"] is True and fresh["reconcile"]["due_at"] is None

    seen = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    await api.fly(
        tenant,
        app_name="oc-st",
        machine_id="e784079b449483",
        observed_state="started",
        observed_at=seen,
        observed_rev=1,
        config_hash="sha256:" + "a" * 64,
        image_ref="ghcr.io/openclaw/openclaw:2026.9.5",
    )
    async with api.db.transaction() as s:
        t = await s.get(Tenant, tenant.id)
        assert t is not None
        t.lifecycle_state = LifecycleState.running
    now = (await api.client.get(f"{BASE}/st/status")).json()
    assert now["drift"] is False and now["desired_rev"] == now["observed_rev"] == 1
    assert now["machine"]["state"] == "started" and now["machine"]["app_name"] == "oc-st"
    assert now["lifecycle_state"] == "running"

    # a key saved: desired state moves on, the tenant is queued, drift until a worker applies it
    assert (
        await api.client.put(f"{BASE}/st/keys/openai", json={"key": api.key("openai")})
    ).status_code == 200
    queued = (await api.client.get(f"{BASE}/st/status")).json()
    assert queued["drift"] is True and queued["desired_rev"] == 2
    assert queued["reconcile"]["due_at"] is not None and queued["reconcile"]["leased"] is False

    queue = ReconcileQueue(api.db)  # a worker takes the tenant, fails once, then parks it
    [claim] = await queue.claim("worker-1")
    leased = (await api.client.get(f"{BASE}/st/status")).json()["reconcile"]
    assert leased["leased"] is True
    assert await queue.retry(claim, "fly: 503 from the Machines API")
    retrying = (await api.client.get(f"{BASE}/st/status")).json()["reconcile"]
    assert retrying["leased"] is False and retrying["attempts"] == 1 and retrying["last_outcome"] == "retry"
    assert "503" in retrying["last_error"] and retrying["last_run_at"] is not None

    async with api.db.transaction() as s:  # due again now, for the next claim
        item = await s.get(ReconcileItem, tenant.id)
        assert item is not None
        item.due_at = datetime.now(UTC) - timedelta(seconds=1)
    [claim] = await queue.claim("worker-1")
    assert await queue.park(claim, "image not found: ghcr.io/openclaw/openclaw:2026.9.5")
    parked = (await api.client.get(f"{BASE}/st/status")).json()
    assert parked["parked_reason"].startswith("image not found") and parked["reconcile"]["due_at"] is None
    assert parked["reconcile"]["last_outcome"] == "park"


async def test_model_choice_offers_the_plans_models_and_previews_the_routing(api: ApiHarness) -> None:
    tenant = await api.tenant("mc", plan="pro")
    before = (await api.client.get(f"{BASE}/mc/model")).json()
    assert before["model"] is None and before["strategy"] == "balanced"
    assert before["routing"] is None and "key" in before["problem"]  # no key yet
    assert {o["key"] for o in before["options"]} == {"missing"}

    await api.client.put(f"{BASE}/mc/keys/anthropic", json={"key": api.key("anthropic")})
    chosen = await api.client.put(
        f"{BASE}/mc/model", json={"model": "anthropic/claude-opus-4-6", "strategy": "quality_first"}
    )
    assert chosen.status_code == 200, chosen.text
    body = chosen.json()
    assert body["changed"] is True and body["model"] == "anthropic/claude-opus-4-6"
    assert body["routing"]["primary"] == "anthropic/claude-opus-4-6"
    assert {o["ref"]: o["key"] for o in body["options"]}["anthropic/claude-haiku-4-5"] == "usable"
    again = await api.client.put(
        f"{BASE}/mc/model", json={"model": "anthropic/claude-opus-4-6", "strategy": "quality_first"}
    )
    assert again.json()["changed"] is False
    actions = [a.action for a in await api.audit(tenant.id)]
    assert actions.count("byok.model_preference") == 1

    unknown = await api.client.put(f"{BASE}/mc/model", json={"model": "acme/wonder-1"})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "model"
    bad_strategy = await api.client.put(f"{BASE}/mc/model", json={"strategy": "cheapest"})
    assert bad_strategy.status_code == 422 and bad_strategy.json()["error"]["field"] == "strategy"
    back = await api.client.put(f"{BASE}/mc/model", json={"model": None, "strategy": "aggressive"})
    assert back.json()["model"] is None and back.json()["strategy"] == "aggressive"


def test_model_choice_follows_the_plans_policy() -> None:
    premium = platform_catalog().plan("premium")
    choice = model_choice(premium, {}, None, RoutingStrategy.balanced)
    assert [o.ref for o in choice.options] == ["anthropic/claude-opus-4-6", "anthropic/claude-sonnet-4-6"]
    assert {o.key for o in choice.options} == {"platform"}
    assert choice.routing is not None and choice.routing.primary == "anthropic/claude-sonnet-4-6"
    byok = platform_catalog().plan("byok")
    refs = [
        o.ref
        for o in model_choice(byok, {"openai": KeyStatus.broken}, None, RoutingStrategy.balanced).options
    ]
    assert byok.models.platform_fallback not in refs  # the operator's fallback is never the primary
    pro = default_catalog().plan("pro")
    broken = model_choice(pro, {"openai": KeyStatus.broken}, None, RoutingStrategy.balanced, ())
    assert broken.routing is None and {o.key for o in broken.options if o.provider == "openai"} == {"broken"}
    # With the operator's MiniMax key offered, a tenant whose keys all fail runs on the plan's fallback.
    rescued = model_choice(pro, {"openai": KeyStatus.broken}, None, RoutingStrategy.balanced, ("minimax",))
    assert rescued.routing is not None and rescued.routing.primary == pro.models.platform_fallback


async def test_a_model_outside_the_plan_is_refused(api: ApiHarness) -> None:
    from tests.support.api import api_harness

    async with api_harness(api.db, catalog=platform_catalog()) as platform:
        await platform.tenant("prem", plan="premium")
        r = await platform.client.put(f"{BASE}/prem/model", json={"model": "openai/gpt-5.4"})
        assert (
            r.status_code == 422
            and "not available on the Premium (Claude) plan" in r.json()["error"]["message"]
        )


async def test_banners_come_with_a_sentence_each(api: ApiHarness) -> None:
    tenant = await api.tenant("ban")
    raised = datetime(2026, 11, 20, tzinfo=UTC)
    async with api.db.transaction() as s:
        s.add_all(
            [
                Banner(
                    tenant_id=tenant.id,
                    kind=BannerKind.key_invalid,
                    subject="anthropic",
                    active=True,
                    raised_at=raised,
                ),
                Banner(
                    tenant_id=tenant.id,
                    kind=BannerKind.payment_failed,
                    message="Your card was declined on 20 November.",
                    active=True,
                    raised_at=raised + timedelta(hours=1),
                ),
                Banner(tenant_id=tenant.id, kind=BannerKind.agent_down, active=False, consecutive_bad=1),
            ]
        )
    banners = (await api.client.get(f"{BASE}/ban/banners")).json()["banners"]
    assert [(b["kind"], b["subject"]) for b in banners] == [
        ("key_invalid", "anthropic"),
        ("payment_failed", None),
    ]
    assert banners[0]["message"].startswith("Your Anthropic key no longer works.")
    assert banners[1]["message"] == "Your card was declined on 20 November."


async def test_announcements_are_dismissed_per_tenant(api: ApiHarness) -> None:
    alice = await api.tenant("ann-a")
    await api.tenant("ann-b")
    async with api.db.transaction() as s:
        own = Announcement(tenant_id=alice.id, kind="plan_migrated", title="You are on Pro now", body="...")
        everyone = Announcement(
            tenant_id=None, kind="maintenance", title="Maintenance", body="Sunday 02:00 UTC"
        )
        s.add_all([own, everyone])
    listed = (await api.client.get(f"{BASE}/ann-a/announcements")).json()["announcements"]
    assert {(a["id"], a["broadcast"]) for a in listed} == {(own.id, False), (everyone.id, True)}
    assert [
        a["id"] for a in (await api.client.get(f"{BASE}/ann-b/announcements")).json()["announcements"]
    ] == [everyone.id]
    for announcement in (own, everyone):
        first = await api.client.post(f"{BASE}/ann-a/announcements/{announcement.id}/dismiss")
        assert first.status_code == 200 and first.json() == {"dismissed": True}
        again = await api.client.post(f"{BASE}/ann-a/announcements/{announcement.id}/dismiss")
        assert again.json() == {"dismissed": False}
    assert (await api.client.get(f"{BASE}/ann-a/announcements")).json()["announcements"] == []
    # the broadcast is still there for the other tenant, whose own dismissal is separate
    assert len((await api.client.get(f"{BASE}/ann-b/announcements")).json()["announcements"]) == 1
    foreign = await api.client.post(f"{BASE}/ann-b/announcements/{own.id}/dismiss")
    assert foreign.status_code == 404 and foreign.json()["error"]["field"] == "announcement_id"
    assert [a.action for a in await api.audit(alice.id)] == ["announcement.dismissed"] * 2
