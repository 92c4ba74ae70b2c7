"""The tenant and fleet commands, as operators' scripts run them: output, exit codes, --json that
parses, --reason where something changes, bad input refused with exit 2 and nothing changed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controlplane.db import migrate
from controlplane.db.models import AuditLog, ProviderKey, Tenant
from controlplane.db.session import Database
from tests.support.cli import cli
from tests.support.fleet import fake_key


@pytest.fixture
async def url(fresh_database_url: str) -> str:
    migrate.upgrade(fresh_database_url)
    return fresh_database_url


async def counts(url: str) -> tuple[int, int]:
    db = Database.from_url(url)
    try:
        async with db.read() as s:
            tenants = await s.scalar(select(func.count()).select_from(Tenant))
            audit = await s.scalar(select(func.count()).select_from(AuditLog))
            return int(tenants or 0), int(audit or 0)
    finally:
        await db.dispose()


async def test_create_show_plan_stop_start_delete_and_fleet(url: str) -> None:
    code, out, err = await cli(
        url, "tenant", "create", "alice@example.com", "--plan", "pro", "--region", "ams"
    )
    assert code == 0, err
    code, out, _ = await cli(url, "tenant", "show", "alice@example.com", "--json")
    view = json.loads(out)
    assert (
        view["lifecycle_state"] == "pending"
        and view["desired"]["plan"] == "pro"
        and view["desired"]["region"] == "ams"
    )
    assert view["audit"][0]["action"] == "tenant.created" and view["audit"][0]["actor"].startswith("cli:")
    assert view["reconcile"]["due_at"] is not None  # marked for the workers

    assert (await cli(url, "tenant", "set-plan", "alice@example.com", "power", "--reason", "upgrade"))[0] == 0
    assert (await cli(url, "tenant", "stop", "alice@example.com", "--reason", "abuse report"))[0] == 0
    view = json.loads((await cli(url, "tenant", "show", "alice@example.com", "--json"))[1])
    assert view["desired"]["plan"] == "power" and view["desired"]["power"] == "stopped"
    assert [a["action"] for a in view["audit"][:2]] == ["tenant.stop", "plan.changed"]
    assert view["audit"][0]["reason"] == "abuse report"
    assert (await cli(url, "tenant", "start", "alice@example.com", "--reason", "resolved"))[0] == 0
    assert (await cli(url, "tenant", "delete", "alice@example.com", "--reason", "left"))[0] == 0
    view = json.loads((await cli(url, "tenant", "show", "alice@example.com", "--json"))[1])
    assert view["desired"]["power"] == "gone" and view["desired"]["destroy_after"] is not None

    code, out, _ = await cli(url, "fleet", "--json")
    fleet = json.loads(out)
    assert fleet["tenants"] == 1 and fleet["by_plan"] == {"power": 1} and fleet["by_region"] == {"ams": 1}
    code, out, _ = await cli(url, "fleet")
    assert code == 0 and "tenants by lifecycle state" in out


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("tenant", "create", "bob@example.com", "--plan", "gold"), "--plan"),
        (("tenant", "create", "bob@example.com", "--plan", "pro", "--region", "Frankfurt"), "--region"),
        (("tenant", "create", "bad id with spaces", "--plan", "pro"), "EXTERNAL_ID"),
        (("tenant", "show", "nobody@example.com"), "EXTERNAL_ID"),
        (("tenant", "set-plan", "nobody@example.com", "pro"), "EXTERNAL_ID"),
        (("tenant", "stop", "nobody@example.com", "--reason", "x"), "EXTERNAL_ID"),
        (("tenant", "set-key", "nobody@example.com", "--provider", "acme"), "--provider"),
        (("tenant", "recreate", "nobody@example.com", "--reason", "x"), "EXTERNAL_ID"),
        (("audit", "tail", "--tenant", "bad id with spaces"), "--tenant"),
    ],
)
async def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    url: str, args: tuple[str, ...], field: str
) -> None:
    before = await counts(url)
    code, out, err = await cli(url, *args)
    assert code == 2, (out, err)
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in err
    assert await counts(url) == before


async def test_changes_require_a_reason(url: str) -> None:
    await cli(url, "tenant", "create", "carol@example.com", "--plan", "pro")
    for verb in ("stop", "start", "delete"):
        code, _, err = await cli(url, "tenant", verb, "carol@example.com")
        assert code == 2 and "--reason" in err


async def test_a_key_on_the_command_line_is_refused_and_never_echoed(url: str) -> None:
    await cli(url, "tenant", "create", "dave@example.com", "--plan", "pro")
    key = fake_key("anthropic")
    code, out, err = await cli(url, "tenant", "set-key", "dave@example.com", "--provider", "anthropic", key)
    assert code == 2 and key not in out + err and key[-8:] not in out + err
    code, out, err = await cli(url, "tenant", "create", key, "--plan", "pro")  # a key pasted as the id
    assert code == 2 and key not in out + err and key[-8:] not in out + err


async def test_set_key_reads_stdin_validates_and_stores_it_encrypted(url: str, tmp_path: Path) -> None:
    import uvicorn

    async def provider(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        # Anthropic's GET /v1/models answer for a valid key.
        body = b'{"data":[{"id":"claude-sonnet-4-6","type":"model"}],"has_more":false}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    server = uvicorn.Server(
        uvicorn.Config(provider, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        await cli(url, "tenant", "create", "erin@example.com", "--plan", "pro")
        key = fake_key("anthropic")
        code, out, err = await cli(
            url,
            "tenant",
            "set-key",
            "erin@example.com",
            "--provider",
            "anthropic",
            stdin=key,
            CP_ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}",
        )
        assert code == 0, err
        assert key[-4:] in out and key not in out + err
    finally:
        server.should_exit = True
        await task
    db = Database.from_url(url)
    try:
        async with db.read() as s:
            row = await s.scalar(select(ProviderKey))
            assert row is not None and row.provider == "anthropic" and row.last4 == key[-4:]
    finally:
        await db.dispose()
