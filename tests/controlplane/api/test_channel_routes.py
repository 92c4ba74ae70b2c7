"""Chat channels through the API: tokens in the vault, senders and DM policy checked per channel,
the plan's channel limit (also under concurrent requests), WhatsApp's QR link, web chat; on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from agents_config.openclaw_config import CHANNEL_TOKEN_ENV
from controlplane.dashboard.channels import TOKEN_FIELDS, record_channel_state
from controlplane.db.models import Channel, ReconcileItem, Secret, Tenant
from controlplane.enums import LifecycleState
from controlplane.secrets_store import channel_env_secret_name
from tests.support.api import BASE, ApiHarness, discord_token, slack_tokens, telegram_token


async def _secret_names(api: ApiHarness, tenant_id: str) -> set[str]:
    async with api.db.transaction() as s:
        return set(await s.scalars(select(Secret.name).where(Secret.tenant_id == tenant_id)))


def test_the_api_stores_each_token_where_the_worker_reads_its_variable() -> None:
    wanted = {(kind, var) for kind, fields in CHANNEL_TOKEN_ENV.items() for _, var in fields}
    offered = {(kind, f.env_var) for kind, fields in TOKEN_FIELDS.items() for f in fields}
    assert offered == wanted
    for kind, fields in TOKEN_FIELDS.items():
        for token in fields:
            assert token.secret == channel_env_secret_name(kind, token.env_var)
    assert TOKEN_FIELDS["slack"][1].secret == "channel:slack:app_token"


async def test_connect_telegram_stores_the_token_encrypted_and_marks_the_tenant(api: ApiHarness) -> None:
    tenant = await api.tenant("tg")
    token = api.secret(telegram_token())
    r = await api.client.put(
        f"{BASE}/tg/channels/telegram", json={"bot_token": token, "allow_from": ["123456789"]}
    )
    assert r.status_code == 201, r.text
    channel = r.json()["channel"]
    assert r.json()["created"] is True
    assert (channel["kind"], channel["dm_policy"], channel["allow_from"]) == (
        "telegram",
        "allowlist",
        ["123456789"],
    )
    assert channel["token_last4"] == {"bot_token": token[-4:]} and channel["active"] is True
    assert await _secret_names(api, tenant.id) == {"channel:telegram:token"}
    async with api.db.transaction() as s:
        secret = await s.scalar(select(Secret).where(Secret.tenant_id == tenant.id))
        assert secret is not None
        assert api.vault.decrypt(secret.value, tenant_id=tenant.id, name=secret.name) == token
        t = await s.get(Tenant, tenant.id)
        assert t is not None and t.desired_rev == 2
        assert await s.get(ReconcileItem, tenant.id) is not None
    assert [a.action for a in await api.audit(tenant.id)] == ["channel.connected"]

    # change senders without resending the token: the stored token stays
    changed = await api.client.put(f"{BASE}/tg/channels/telegram", json={"dm_policy": "pairing"})
    assert changed.status_code == 200 and changed.json()["created"] is False
    assert changed.json()["channel"]["token_last4"] == {"bot_token": token[-4:]}
    assert [a.action for a in await api.audit(tenant.id)] == ["channel.connected", "channel.changed"]


async def test_slack_needs_both_tokens_and_discord_its_bot_token(api: ApiHarness) -> None:
    await api.tenant("sl", plan="power")
    bot, app = (api.secret(t) for t in slack_tokens())
    half = await api.client.put(f"{BASE}/sl/channels/slack", json={"bot_token": bot})
    assert half.status_code == 422 and half.json()["error"]["field"] == "app_token"
    swapped = await api.client.put(f"{BASE}/sl/channels/slack", json={"bot_token": app, "app_token": bot})
    assert swapped.status_code == 422 and swapped.json()["error"]["field"] == "bot_token"
    ok = await api.client.put(f"{BASE}/sl/channels/slack", json={"bot_token": bot, "app_token": app})
    assert ok.status_code == 201
    no_token = await api.client.put(f"{BASE}/sl/channels/discord", json={})
    assert no_token.status_code == 422 and no_token.json()["error"]["field"] == "bot_token"
    dc = await api.client.put(
        f"{BASE}/sl/channels/discord",
        json={"bot_token": api.secret(discord_token()), "allow_from": ["112233445566778899"]},
    )
    assert dc.status_code == 201


async def test_senders_and_dm_policy_are_checked_per_channel(api: ApiHarness) -> None:
    await api.tenant("rules", plan="power")
    token = api.secret(telegram_token(2))
    cases = [
        ("telegram", {"bot_token": token, "allow_from": ["@someone"]}, "allow_from[0]"),
        ("telegram", {"bot_token": token, "dm_policy": "allowlist"}, "dm_policy"),
        ("telegram", {"bot_token": token, "allow_from": ["1", "1"]}, "allow_from"),
        ("whatsapp", {"allow_from": ["15555550123"]}, "allow_from[0]"),
        ("whatsapp", {"allow_from": ["+15555550123"], "dm_policy": "open"}, "allow_from"),
        ("whatsapp", {"bot_token": token}, "bot_token"),
        ("telegram", {"bot_token": "123:short"}, "bot_token"),
        ("telegram", {"bot_token": token, "dm_policy": "everyone"}, "dm_policy"),
    ]
    for kind, body, field in cases:
        r = await api.client.put(f"{BASE}/rules/channels/{kind}", json=body)
        assert r.status_code == 422, (kind, body, r.text)
        assert r.json()["error"]["field"] == field, (kind, body, r.text)
        assert token not in r.text
    listed = await api.client.get(f"{BASE}/rules/channels")
    assert listed.json()["channels"] == []


async def test_whatsapp_answers_where_and_how_to_link_it(api: ApiHarness) -> None:
    tenant = await api.tenant("wa")
    r = await api.client.put(f"{BASE}/wa/channels/whatsapp", json={"allow_from": ["+15555550123"]})
    assert r.status_code == 201
    link = r.json()["channel"]["link"]
    assert link["method"] == "qr_code" and link["url"] is None and "QR code" in link["steps"]
    assert await _secret_names(api, tenant.id) == set()  # no token at all

    await api.fly(tenant, app_name="oc-wa-1")
    got = (await api.client.get(f"{BASE}/wa/channels/whatsapp")).json()
    assert got["link"]["url"] == "https://oc-wa-1.fly.dev/" and got["state"] == "unknown"

    async with api.db.transaction() as s:  # what the health poller will write
        assert await record_channel_state(s, tenant.id, "whatsapp", "unlinked", detail="logged out")
        assert not await record_channel_state(s, tenant.id, "slack", "linked")
    got = (await api.client.get(f"{BASE}/wa/channels/whatsapp")).json()
    assert (got["state"], got["state_detail"]) == ("unlinked", "logged out") and got["state_at"]


async def test_sleeping_plans_refuse_always_on_channels_naming_a_plan_that_allows_them(
    api: ApiHarness,
) -> None:
    await api.tenant("sleepy", plan="starter")
    for kind, body in (
        ("whatsapp", {}),
        ("discord", {"bot_token": api.secret(discord_token(3))}),
        (
            "slack",
            dict(zip(("bot_token", "app_token"), (api.secret(t) for t in slack_tokens(4)), strict=True)),
        ),
    ):
        r = await api.client.put(f"{BASE}/sleepy/channels/{kind}", json=body)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "channel_limit" and error["field"] == "kind"
        assert "always-on" in error["message"] and "Pro" in error["message"]
        assert error["details"] == {"plan": "starter", "limit": 1, "upgrade_plan": "pro"}


async def test_the_channel_limit_names_the_limit_and_the_plan_that_allows_more(api: ApiHarness) -> None:
    await api.tenant("one", plan="starter")
    first = await api.client.put(
        f"{BASE}/one/channels/telegram", json={"bot_token": api.secret(telegram_token(5))}
    )
    assert first.status_code == 201
    # changing the connected channel is not a new one
    assert (
        await api.client.put(f"{BASE}/one/channels/telegram", json={"allow_from": ["42"]})
    ).status_code == 200

    await api.tenant("three", plan="pro")
    await api.client.put(f"{BASE}/three/channels/telegram", json={"bot_token": api.secret(telegram_token(6))})
    await api.client.put(f"{BASE}/three/channels/whatsapp", json={})
    await api.client.put(f"{BASE}/three/channels/discord", json={"bot_token": api.secret(discord_token(7))})
    bot, app = (api.secret(t) for t in slack_tokens(8))
    fourth = await api.client.put(f"{BASE}/three/channels/slack", json={"bot_token": bot, "app_token": app})
    assert fourth.status_code == 409
    error = fourth.json()["error"]
    assert error["field"] == "channels" and error["details"] == {
        "plan": "pro",
        "limit": 3,
        "upgrade_plan": "power",
    }
    assert (
        "allows 3 channels" in error["message"] and "Power plan allows unlimited channels" in error["message"]
    )
    # after a disconnect there is room again
    assert (await api.client.delete(f"{BASE}/three/channels/whatsapp")).json() == {"deleted": True}
    assert (
        await api.client.put(f"{BASE}/three/channels/slack", json={"bot_token": bot, "app_token": app})
    ).status_code == 201


async def test_concurrent_connects_never_exceed_the_limit(api: ApiHarness) -> None:
    one = await api.tenant("race", plan="starter")  # 1 channel
    three = await api.tenant("race2", plan="pro")  # 3 channels, 4 kinds asked for at once
    token = api.secret(telegram_token(9))
    tokens = [api.secret(telegram_token(20)), api.secret(discord_token(21))]
    bot, app = (api.secret(t) for t in slack_tokens(22))
    starter = [
        ("telegram", {"bot_token": token}),
        ("telegram", {"bot_token": token}),  # the same kind twice: one connect, one change
        ("discord", {"bot_token": tokens[1]}),  # refused on a sleeping plan
    ]
    pro = [
        ("telegram", {"bot_token": tokens[0]}),
        ("discord", {"bot_token": tokens[1]}),
        ("slack", {"bot_token": bot, "app_token": app}),
        ("whatsapp", {}),
    ]
    for _ in range(3):  # several rounds: the interleaving differs from round to round
        results = await asyncio.gather(
            *(api.client.put(f"{BASE}/race/channels/{k}", json=b) for k, b in starter),
            *(api.client.put(f"{BASE}/race2/channels/{k}", json=b) for k, b in pro),
        )
        assert all(r.status_code in (200, 201, 409) for r in results), [r.text for r in results]
        assert sorted(r.status_code for r in results[:2]) in ([200, 201], [200, 200])
        assert results[2].status_code == 409
        assert sum(r.status_code == 409 for r in results[3:]) == 1
        async with api.db.transaction() as s:
            rows = await s.execute(select(Channel.tenant_id, func.count()).group_by(Channel.tenant_id))
            counts = {tenant_id: count for tenant_id, count in rows}
        assert counts == {one.id: 1, three.id: 3}
        async with api.db.transaction() as s:
            await s.execute(Channel.__table__.delete())


async def test_disconnect_removes_every_credential_of_the_channel(api: ApiHarness) -> None:
    tenant = await api.tenant("bye", plan="power")
    bot, app = (api.secret(t) for t in slack_tokens(30))
    await api.client.put(f"{BASE}/bye/channels/slack", json={"bot_token": bot, "app_token": app})
    await api.client.put(f"{BASE}/bye/channels/telegram", json={"bot_token": api.secret(telegram_token(31))})
    assert await _secret_names(api, tenant.id) == {
        "channel:slack:token",
        "channel:slack:app_token",
        "channel:telegram:token",
    }
    r = await api.client.delete(f"{BASE}/bye/channels/slack")
    assert r.json() == {"deleted": True}
    assert await _secret_names(api, tenant.id) == {"channel:telegram:token"}
    assert (await api.client.get(f"{BASE}/bye/channels/slack")).status_code == 404
    assert (await api.client.delete(f"{BASE}/bye/channels/slack")).json() == {"deleted": False}


async def test_operator_paid_plans_refuse_open_dms(api: ApiHarness) -> None:
    from tests.support.agent_configs import platform_catalog
    from tests.support.api import api_harness

    async with api_harness(api.db, catalog=platform_catalog()) as platform:
        await platform.tenant("paid", plan="premium")
        r = await platform.client.put(f"{BASE}/paid/channels/whatsapp", json={"dm_policy": "open"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "dm_policy"
        ok = await platform.client.put(f"{BASE}/paid/channels/whatsapp", json={"dm_policy": "pairing"})
        assert ok.status_code == 201


async def test_a_plan_downgrade_shows_which_channels_the_agent_no_longer_has(api: ApiHarness) -> None:
    tenant = await api.tenant("down", plan="power")
    await api.client.put(f"{BASE}/down/channels/whatsapp", json={})
    await api.client.put(f"{BASE}/down/channels/telegram", json={"bot_token": api.secret(telegram_token(40))})
    async with api.db.transaction() as s:
        t = await s.get(Tenant, tenant.id)
        assert t is not None
        t.plan = "starter"
    listed = (await api.client.get(f"{BASE}/down/channels")).json()
    by_kind = {c["kind"]: c for c in listed["channels"]}
    assert by_kind["telegram"]["active"] and by_kind["telegram"]["note"] is None
    assert not by_kind["whatsapp"]["active"] and "always-on" in by_kind["whatsapp"]["note"]
    assert listed["max_channels"] == 1


async def test_web_chat_is_the_control_ui(api: ApiHarness) -> None:
    tenant = await api.tenant("web")
    none_yet = (await api.client.get(f"{BASE}/web/webchat")).json()
    assert none_yet["url"] is None and none_yet["available"] is False
    await api.fly(tenant, app_name="oc-web-1")
    async with api.db.transaction() as s:
        t = await s.get(Tenant, tenant.id)
        assert t is not None
        t.lifecycle_state = LifecycleState.running
    up = (await api.client.get(f"{BASE}/web/webchat")).json()
    assert up["url"] == "https://oc-web-1.fly.dev/" and up["available"] is True
    assert (await api.client.get(f"{BASE}/web/channels")).json()[
        "web_chat_url"
    ] == "https://oc-web-1.fly.dev/"
