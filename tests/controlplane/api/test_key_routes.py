"""Provider keys through the API: save (validated first), test without saving, re-check, delete,
status; on SQLite and PostgreSQL. The ``api`` fixture checks after each test that no key came back
in a response, a log line, the audit log or the database in the clear."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.db.models import ProviderKey, ReconcileItem, Secret, Tenant
from tests.support.api import BASE, ApiHarness


async def test_save_validates_encrypts_and_changes_desired_state(api: ApiHarness) -> None:
    tenant = await api.tenant("alice")
    key = api.key("anthropic")
    r = await api.client.put(f"{BASE}/alice/keys/anthropic", json={"key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "usable" and body["verdict"]["verdict"] == "ok"
    assert body["key"]["last4"] == key[-4:] and body["key"]["provider"] == "anthropic"
    assert not body["replaced"] and not body["unchanged"]
    assert api.providers.calls >= 1

    async with api.db.transaction() as s:
        row = await s.scalar(select(ProviderKey).where(ProviderKey.tenant_id == tenant.id))
        secret = await s.scalar(select(Secret).where(Secret.tenant_id == tenant.id))
        t = await s.get(Tenant, tenant.id)
        queued = await s.get(ReconcileItem, tenant.id)
    assert row is not None and secret is not None and secret.value.startswith("v1:")
    assert api.vault.decrypt(secret.value, tenant_id=tenant.id, name="provider:anthropic") == key
    assert t is not None and t.desired_rev == 2 and queued is not None
    [entry] = [a for a in await api.audit(tenant.id) if a.action == "byok.key_saved"]
    assert entry.actor == "api"

    listed = (await api.client.get(f"{BASE}/alice/keys")).json()["keys"]
    assert [k["provider"] for k in listed] == ["anthropic"]
    one = await api.client.get(f"{BASE}/alice/keys/anthropic")
    assert one.status_code == 200 and one.json()["fingerprint"] == listed[0]["fingerprint"]


async def test_refused_key_answers_the_verdict_and_a_sentence_and_stores_nothing(api: ApiHarness) -> None:
    tenant = await api.tenant("bob")
    key = api.key("openai")
    api.providers.refused.add(key)
    r = await api.client.put(f"{BASE}/bob/keys/openai", json={"key": key})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "key_refused" and error["field"] == "key"
    assert error["details"]["verdict"] == "invalid_key"
    assert "OpenAI" in error["message"] and error["message"].endswith(".")
    async with api.db.transaction() as s:
        assert (await s.scalar(select(ProviderKey).where(ProviderKey.tenant_id == tenant.id))) is None
        assert (await s.scalar(select(Secret).where(Secret.tenant_id == tenant.id))) is None


async def test_no_credit_is_stored_with_a_warning_and_overload_as_unverified(api: ApiHarness) -> None:
    await api.tenant("carol")
    broke, busy = api.key("openai", 1), api.key("anthropic", 2)
    api.providers.no_credit.add(broke)
    api.providers.overloaded.add(busy)
    warned = await api.client.put(f"{BASE}/carol/keys/openai", json={"key": broke})
    assert warned.status_code == 200 and warned.json()["outcome"] == "warning"
    assert warned.json()["key"]["verdict"] == "no_credit"
    pending = await api.client.put(f"{BASE}/carol/keys/anthropic", json={"key": busy})
    assert pending.status_code == 200 and pending.json()["outcome"] == "unverified"


async def test_wrong_key_shape_is_refused_before_any_provider_call(api: ApiHarness) -> None:
    await api.tenant("dave")
    wrong = api.key("anthropic")  # an Anthropic key offered as OpenAI's
    r = await api.client.put(f"{BASE}/dave/keys/openai", json={"key": wrong})
    assert r.status_code == 422 and r.json()["error"]["code"] == "key_format"
    assert r.json()["error"]["field"] == "key"
    assert api.providers.calls == 0


async def test_test_endpoint_checks_without_storing(api: ApiHarness) -> None:
    tenant = await api.tenant("erin")
    good, bad = api.key("openai", 3), api.key("openai", 4)
    api.providers.refused.add(bad)
    ok = await api.client.post(f"{BASE}/erin/keys/openai/test", json={"key": good})
    assert ok.status_code == 200 and ok.json()["would_store"] == "usable" and ok.json()["last4"] == good[-4:]
    refused = await api.client.post(f"{BASE}/erin/keys/openai/test", json={"key": bad})
    assert refused.status_code == 200 and refused.json()["would_store"] == "refused"
    assert refused.json()["verdict"]["verdict"] == "invalid_key"
    async with api.db.transaction() as s:
        assert (await s.scalar(select(Secret).where(Secret.tenant_id == tenant.id))) is None
    assert [a.action for a in await api.audit(tenant.id)] == []


async def test_recheck_records_the_observation_and_delete_forgets_the_key(api: ApiHarness) -> None:
    tenant = await api.tenant("frank")
    key = api.key("openai", 5)
    assert (await api.client.put(f"{BASE}/frank/keys/openai", json={"key": key})).status_code == 200
    api.providers.refused.add(key)
    again = await api.client.post(f"{BASE}/frank/keys/openai/recheck")
    assert again.status_code == 200 and again.json()["recorded"] is True
    assert again.json()["key"]["consecutive_failures"] == 1 and again.json()["key"]["status"] != "broken"

    gone = await api.client.delete(f"{BASE}/frank/keys/openai")
    assert gone.status_code == 200 and gone.json() == {"deleted": True}
    assert (await api.client.delete(f"{BASE}/frank/keys/openai")).json() == {"deleted": False}
    missing = await api.client.get(f"{BASE}/frank/keys/openai")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "provider"
    assert (await api.client.post(f"{BASE}/frank/keys/openai/recheck")).status_code == 404
    async with api.db.transaction() as s:
        assert (await s.scalar(select(Secret).where(Secret.tenant_id == tenant.id))) is None
    actions = [a.action for a in await api.audit(tenant.id)]
    assert actions[0] == "byok.key_saved" and actions[-1] == "byok.key_deleted"


async def test_dashboard_user_is_recorded_as_the_actor(api: ApiHarness) -> None:
    tenant = await api.tenant("gina")
    key = api.key("google")
    r = await api.client.put(
        f"{BASE}/gina/keys/google", json={"key": key}, headers={"x-dashboard-user": "u_42@example.com"}
    )
    assert r.status_code == 200
    assert [a.actor for a in await api.audit(tenant.id)] == ["api:u_42@example.com"]
    bad = await api.client.delete(f"{BASE}/gina/keys/google", headers={"x-dashboard-user": "a b"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "x-dashboard-user"


async def test_unknown_provider_and_unknown_tenant(api: ApiHarness) -> None:
    await api.tenant("hank")
    key = api.key("openai")
    nope = await api.client.put(f"{BASE}/hank/keys/acme", json={"key": key})
    assert nope.status_code == 422 and nope.json()["error"]["field"] == "provider"
    ghost = await api.client.put(f"{BASE}/nobody/keys/openai", json={"key": key})
    assert ghost.status_code == 404 and ghost.json()["error"]["field"] == "external_id"
    assert api.providers.calls == 0


async def test_a_key_is_never_taken_from_a_url(api: ApiHarness) -> None:
    await api.tenant("ivy")
    key = api.key("openai", 9)
    in_path = await api.client.get(f"{BASE}/{key}/keys")
    assert in_path.status_code == 422 and in_path.json()["error"]["field"] == "external_id"
    in_query = await api.client.put(f"{BASE}/ivy/keys/openai", params={"key": key})
    assert in_query.status_code == 422 and in_query.json()["error"]["field"] == "query"
    extra = await api.client.put(f"{BASE}/ivy/keys/openai", json={"key": key, "api_key": key})
    assert extra.status_code == 422 and extra.json()["error"]["field"] == "api_key"
