"""``controlplane health sweep --once --json`` and ``controlplane keys revalidate --tenant`` as an
operator runs them: subprocesses against the emulator (and a fake provider) over loopback."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from controlplane.db import migrate
from controlplane.db.models import AuditLog, ProviderKey
from controlplane.db.session import Database
from controlplane.loopback import serve_asgi
from controlplane.vault import Vault
from tests.support.db import TEST_RING
from tests.support.fleet import add_key, emulator, running_fleet, seed_tenant, worker_env


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controlplane",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_health_sweep_once_prints_its_report_as_json(tmp_path: Path) -> None:
    fresh_database_url = f"sqlite:///{tmp_path}/cli.db"  # the command's plumbing: one backend is enough
    migrate.upgrade(fresh_database_url)
    db = Database.from_url(fresh_database_url)
    vault = Vault(TEST_RING)
    try:
        for n in range(2):
            await seed_tenant(db, vault, f"cli{n}@x", plan="pro")
        emu = emulator()
        async with running_fleet(db, fresh_database_url, emu) as fleet:
            await fleet.converge()
        async with emu.serve() as fly_url:
            code, out, err = await run_cli(
                worker_env(fresh_database_url, fly_url), "health", "sweep", "--once", "--json"
            )
        assert code == 0, err[-2000:]
        report = json.loads(out.strip().splitlines()[-1])
        assert report["full_listing"] is True and report["machines_known"] == 2
        assert report["probes_sent"] == 2 and report["probes_failed"] == 0
        assert report["fly_list_calls"] == 1 and report["drift_marked"] == 0
    finally:
        await db.dispose()


async def test_keys_revalidate_for_one_tenant_uses_the_policy(tmp_path: Path) -> None:
    fresh_database_url = f"sqlite:///{tmp_path}/cli.db"
    migrate.upgrade(fresh_database_url)
    db = Database.from_url(fresh_database_url)
    vault = Vault(TEST_RING)
    calls: list[str] = []

    async def anthropic(scope: dict[str, Any], receive: Any, send: Any) -> None:  # refuses every key
        if scope["type"] != "http":
            return
        calls.append(scope["path"])
        body = json.dumps(
            {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    try:
        tenant = await seed_tenant(db, vault, "rk@x", plan="pro", providers=())
        await add_key(db, vault, tenant, "anthropic")
        async with serve_asgi(anthropic) as provider_url:
            env = worker_env(fresh_database_url, "http://127.0.0.1:9", CP_ANTHROPIC_BASE_URL=provider_url)
            code, out, err = await run_cli(env, "keys", "revalidate", "--tenant", "rk@x", "--json")
            assert code == 0, err[-2000:]
        rows = json.loads(out)["rechecked"]
        assert rows == [
            {
                "tenant": "rk@x",
                "provider": "anthropic",
                "verdict": "invalid_key",
                "status": "usable",  # one refusal: not broken (the policy wants three in a row)
                "consecutive_failures": 1,
            }
        ]
        assert len(calls) == 1
        async with db.read() as s:
            key = await s.scalar(select(ProviderKey).where(ProviderKey.tenant_id == tenant))
            assert key is not None and key.consecutive_failures == 1
            actors = set((await s.scalars(select(AuditLog.actor))).all())
        assert "api" in actors
        assert "sk-ant" not in out
    finally:
        await db.dispose()
