"""A key or token sent to the API never comes back: not in a response, a log line, the audit log or
the database in the clear, whatever the request gets wrong. (Every API test ends with the same
check: ``tests/support/api.py``; here it is pointed at the awkward cases, and checked itself.)"""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter

from controlplane import audit
from controlplane.api import create_app
from controlplane.api.limits import json_depth_exceeds
from controlplane.db.session import Database
from controlplane.logging import get_logger
from tests.support.api import (
    BASE,
    ApiHarness,
    api_harness,
    api_settings,
    discord_token,
    slack_tokens,
    telegram_token,
)


async def test_secrets_in_the_wrong_places_are_refused_without_an_echo(api: ApiHarness) -> None:
    await api.tenant("careless", plan="power")
    key = api.key("anthropic", 21)
    token = api.secret(telegram_token(22))
    bot, app = (api.secret(t) for t in slack_tokens(23))
    attempts = [
        ("PUT", f"{BASE}/careless/keys/anthropic", {"json": {"api_key": key}}),
        ("PUT", f"{BASE}/careless/keys/anthropic", {"json": {"key": key, "note": key}}),
        ("PUT", f"{BASE}/careless/keys/anthropic", {"json": {"key": [key]}}),
        ("PUT", f"{BASE}/careless/keys/anthropic", {"json": {"key": key + " " + key}}),
        ("PUT", f"{BASE}/careless/keys/openai", {"json": {"key": key}}),  # another provider's key
        ("POST", f"{BASE}/careless/keys/openai/test", {"json": {"key": key}}),
        ("PUT", f"{BASE}/careless/keys/anthropic", {"json": {"key": key}, "params": {"key": key}}),
        ("DELETE", f"{BASE}/careless/keys/groq", {"headers": {"x-dashboard-user": key}}),
        ("DELETE", f"{BASE}/careless/keys/groq", {"headers": {"x-dashboard-user": api.key("deepseek", 26)}}),
        ("GET", f"{BASE}/{key}/status", {}),
        ("PUT", f"{BASE}/careless/channels/whatsapp", {"json": {"bot_token": token}}),
        ("PUT", f"{BASE}/careless/channels/telegram", {"json": {"bot_token": token, "allow_from": [token]}}),
        ("PUT", f"{BASE}/careless/channels/slack", {"json": {"bot_token": app, "app_token": bot}}),
        ("PUT", f"{BASE}/careless/channels/discord", {"json": {"bot_token": bot}}),
        ("PUT", f"{BASE}/careless/channels/telegram", {"json": {"bot_token": token + "x" * 600}}),
        ("PUT", f"{BASE}/careless/model", {"json": {"model": key}}),
        ("POST", f"{BASE}/careless/caps/email/reports", {"json": {"report_id": key, "amount": 1}}),
    ]
    for method, url, kwargs in attempts:
        r = await api.client.request(method, url, **kwargs)
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
    # a key-shaped request id is not taken (it would be echoed and logged): a new one is made up
    short = api.key("deepseek", 25)  # sk- and 32 hex digits: fits the request id's own shape
    ignored = await api.client.get(f"{BASE}/careless/status", headers={"x-request-id": short})
    assert ignored.status_code == 200 and ignored.headers["x-request-id"] != short
    # and a key that works, then saved again and checked again: still never echoed
    for _ in range(2):
        assert (await api.client.put(f"{BASE}/careless/keys/anthropic", json={"key": key})).status_code == 200
    assert (await api.client.post(f"{BASE}/careless/keys/anthropic/recheck")).status_code == 200
    assert (
        await api.client.put(
            f"{BASE}/careless/channels/discord", json={"bot_token": api.secret(discord_token(24))}
        )
    ).status_code == 201
    # (the fixture's check runs now: responses, logs, audit rows, channel settings, secrets table)


async def test_the_leak_check_finds_a_leak(db: Database) -> None:
    key_echo = APIRouter()

    @key_echo.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    echo_app = create_app(api_settings("sqlite:///unused.db"), db=db, extra_routers=[key_echo])
    async with api_harness(db) as api:
        value = api.key("openai", 31)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=echo_app), base_url="http://t"
        ) as client:
            api._record(await client.post("/echo", json={"k": value}))
        with pytest.raises(AssertionError, match="responses"):
            await api.assert_nothing_leaked()
        api.bodies.clear()
        disguised = value.replace("sk-", "s k-")  # not key-shaped any more, so not redacted
        get_logger("test").info("oops", where=disguised)
        api.secrets.append(disguised)
        with pytest.raises(AssertionError, match="logs"):
            await api.assert_nothing_leaked()


async def test_audit_rows_are_redacted_before_they_are_stored(db: Database) -> None:
    async with api_harness(db) as api:
        tenant = await api.tenant("aud")
        key = api.key("openai", 41)
        async with db.transaction() as s:
            audit.record(
                s, actor="api", action="test", tenant_id=tenant.id, reason=f"saw {key}", after={"note": key}
            )
        await api.assert_nothing_leaked()


def test_json_depth_is_measured_without_recursion() -> None:
    assert not json_depth_exceeds(b'{"a": [1, {"b": [2]}]}', 4)
    assert json_depth_exceeds(b'{"a": [1, {"b": [2]}]}', 3)
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[\\"]]]]"}', 2)  # brackets inside strings, escaped quote
    assert json_depth_exceeds(b"[" * 100_000, 32)
