"""The ops commands against a fleet the real worker converged on the Fly emulator: `fleet`,
`tenant show`, `tenant recreate`, `audit tail`, `orphans`. Output, exit codes, --json that parses,
--reason where something changes, refusals (exit 2 bad input, exit 3 safety check) changing nothing.

The CLI runs as a subprocess (as operators run it); independent calls run concurrently. Each CLI
call is a Python start-up, so to keep the suite's time down: the recreate and the audit reads run on
every backend; the fleet and tenant views on SQLite and PostgreSQL (libSQL is SQLite's dialect, its
driver has its own tests); the orphan scan (Fly listings, a trivial read of fly_resources) on
PostgreSQL; the keys commands' output on SQLite (the rotation itself runs on every backend in
tests/controlplane/test_rotation.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from controlplane import audit
from controlplane.billing.banners import set_banner
from controlplane.db import migrate
from controlplane.db.models import AuditLog, FlyResources, ReconcileItem, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.enums import BannerKind, LifecycleState
from controlplane.fly.models import CreateVolumeRequest
from controlplane.vault import Vault
from tests.support.cli import cli, cli_env, one_error_line
from tests.support.db import test_key as key_bytes
from tests.support.emulator import IMAGE, machine_body
from tests.support.fleet import FLY_TOKEN, ORG, add_key, emulator, running_fleet, seed_tenant


@pytest.fixture
async def plane(fresh_database_url: str) -> AsyncIterator[tuple[str, Database]]:
    migrate.upgrade(fresh_database_url)
    db = Database.from_url(fresh_database_url)
    try:
        yield fresh_database_url, db
    finally:
        await db.dispose()


async def fly_of(db: Database, tenant_id: str) -> FlyResources:
    async with db.read() as s:
        fly = await s.get(FlyResources, tenant_id)
        assert fly is not None
        s.expunge(fly)
        return fly


async def tenant_of(db: Database, tenant_id: str) -> Tenant:
    async with db.read() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None
        s.expunge(tenant)
        return tenant


async def audit_rows(db: Database, **where: Any) -> list[AuditLog]:
    async with db.read() as s:
        stmt = select(AuditLog).order_by(AuditLog.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(AuditLog, name) == value)
        rows = list((await s.scalars(stmt)).all())
        s.expunge_all()
        return rows


@pytest.mark.parametrize("fresh_database_url", ["sqlite", "postgresql"], indirect=True)
async def test_fleet_and_tenant_show_on_a_converged_fleet(plane: tuple[str, Database], vault: Vault) -> None:
    url, db = plane
    a = await seed_tenant(db, vault, "a@x", plan="pro", providers=(), channels=(("telegram", ("1001",)),))
    key = await add_key(db, vault, a, "anthropic")
    b = await seed_tenant(db, vault, "b@x", plan="starter", region="ams")
    await seed_tenant(db, vault, "c@x", plan="retired-plan")  # not in the catalog: parked
    async with running_fleet(db, url, emulator()) as fleet:
        await fleet.converge()
    async with db.transaction() as s:
        await set_banner(
            s,
            a,
            BannerKind.agent_crashlooping,
            active=True,
            now=utcnow(),
            actor="poller",
            reason="3 restarts",
        )
        # b: a change not applied yet, and reconciles failing over and over
        await s.execute(update(Tenant).where(Tenant.id == b).values(desired_rev=Tenant.desired_rev + 1))
        await s.execute(
            update(ReconcileItem)
            .where(ReconcileItem.tenant_id == b)
            .values(attempts=4, last_error="FlyUnavailable: 503 from Fly")
        )

    (
        (c1, fleet_json, e1),
        (c2, fleet_text, e2),
        (c3, show_json, e3),
        (c4, show_text, e4),
    ) = await asyncio.gather(
        cli(url, "fleet", "--json"),
        cli(url, "fleet"),
        cli(url, "tenant", "show", "a@x", "--json"),
        cli(url, "tenant", "show", "a@x"),
    )
    assert (c1, c2, c3, c4) == (0, 0, 0, 0), (e1, e2, e3, e4)
    view = json.loads(fleet_json)
    assert view["tenants"] == 3 and view["by_lifecycle_state"]["running"] == 2
    assert view["by_plan"] == {"pro": 1, "retired-plan": 1, "starter": 1}
    assert view["by_region"] == {"ams": 1, "iad": 2}
    assert view["by_image"] == {IMAGE: 2} and view["by_banner"] == {"agent_crashlooping": 1}
    assert view["parked_count"] == 1 and view["crashlooping"] == 1 and view["failing"] == 1
    attention = {row["external_id"]: row for row in view["attention"]}
    assert set(attention) == {"a@x", "b@x", "c@x"} and view["attention_total"] == 3
    assert "crash-looping" in attention["a@x"]["reasons"]
    assert [r.split(":")[0] for r in attention["b@x"]["reasons"]] == ["drifting", "failing"]
    assert "503 from Fly" in attention["b@x"]["reasons"][1]
    assert any(r.startswith("parked: ") and "retired-plan" in r for r in attention["c@x"]["reasons"])
    assert "needing attention" in fleet_text and "c@x" in fleet_text and "agent_crashlooping" in fleet_text

    show = json.loads(show_json)
    fly = await fly_of(db, a)
    assert show["desired"]["image"] == show["observed"]["image"] == IMAGE
    assert show["observed"]["machine_id"] == fly.machine_id and show["observed"]["machine_state"] == "started"
    assert show["drift"] is False and show["lifecycle_state"] == "running"
    assert [b["kind"] for b in show["banners"]] == ["agent_crashlooping"]
    assert show["keys"] == [
        {
            "provider": "anthropic",
            "last4": key[-4:],
            "status": "usable",
            "verdict": "ok",
            "last_checked_at": show["keys"][0]["last_checked_at"],
        }
    ]
    assert show["channels"] == [{"kind": "telegram", "enabled": True}]
    assert {"machine.created", "key.saved"} <= {row["action"] for row in show["audit"]}
    assert key not in show_json + show_text + fleet_json + fleet_text
    assert "desired" in show_text and "observed" in show_text and fly.machine_id in show_text


async def test_recreate_replaces_the_machine_keeps_the_volume_and_ignores_parking(
    plane: tuple[str, Database], vault: Vault
) -> None:
    url, db = plane
    tenant_id = await seed_tenant(db, vault, "r@x")
    async with running_fleet(db, url, emulator()) as fleet:
        await fleet.converge()
        before = await fly_of(db, tenant_id)
        # Parked with a long backoff, as a run of terminal failures leaves it: an operator's
        # action still runs at once (invariant 6).
        async with db.transaction() as s:
            await s.execute(
                update(ReconcileItem)
                .where(ReconcileItem.tenant_id == tenant_id)
                .values(parked_reason="terminal: test", parked_at=utcnow(), due_at=None, attempts=9)
            )
        rev = (await tenant_of(db, tenant_id)).desired_rev
        (c1, _, e1), (c3, _, e3) = await asyncio.gather(
            cli(url, "tenant", "recreate", "r@x"),
            cli(url, "tenant", "recreate", "r@x", "--reason", "x", "--fresh-volume", "--confirm", "s@x"),
        )
        assert c1 == 2 and "--reason" in e1
        assert c3 == 3 and one_error_line(e3, "--confirm")
        assert (await tenant_of(db, tenant_id)).desired_rev == rev
        assert (await fly_of(db, tenant_id)).pending_destroy is None

        code, out, err = await cli(url, "tenant", "recreate", "r@x", "--reason", "wedged gateway")
        assert code == 0 and "volume kept" in out, err
        await fleet.converge()
        after = await fly_of(db, tenant_id)
        assert after.machine_id not in (None, before.machine_id) and after.pending_destroy is None
        assert after.volume_id == before.volume_id
        assert fleet.emu.machines[before.machine_id].state == "destroyed"
        assert fleet.emu.machines[after.machine_id].state == "started"
        live = [m for m in fleet.emu.machines.values() if m.app == before.app_name and m.state != "destroyed"]
        assert len(live) == 1
        tenant = await tenant_of(db, tenant_id)
        assert tenant.lifecycle_state is LifecycleState.running and after.observed_rev == tenant.desired_rev
        rows = await audit_rows(db, tenant_id=tenant_id)
        asked = next(r for r in rows if r.action == "tenant.recreate")
        assert asked.actor.startswith("cli:") and asked.reason == "wedged gateway"
        later = [r.action for r in rows if r.id > asked.id]
        assert later.index("machine.destroyed") < later.index("machine.created")

        # With a fresh volume (typed confirmation: the tenant's id): the data goes too.
        code, out, err = await cli(
            url, "tenant", "recreate", "r@x", "--reason", "corrupt state", "--fresh-volume", stdin="r@x\n"
        )
        assert code == 0, err
        # A destroyed volume takes a few seconds to go; the reconciler looks again after them, so
        # wait out any look-again due within 30 s (a loaded machine stretches the steps).
        await fleet.converge(idle_horizon=30.0)
        fresh = await fly_of(db, tenant_id)
        assert fresh.volume_id not in (None, before.volume_id) and fresh.machine_id != after.machine_id
        assert fleet.emu.state.volumes[before.volume_id].state == "destroyed"
        assert fleet.emu.machines[fresh.machine_id].state == "started"


async def test_audit_tail_filters_and_follows(plane: tuple[str, Database], vault: Vault) -> None:
    url, db = plane
    a = await seed_tenant(db, vault, "t1@x")
    await seed_tenant(db, vault, "t2@x")
    async with db.transaction() as s:
        old = audit.record(s, actor="cli:ops", action="tenant.stop", tenant_id=a, reason="abuse report")
        old.at = utcnow() - timedelta(hours=3)
        audit.record(s, actor="cli:ops", action="tenant.start", tenant_id=a, reason="resolved")

    results = await asyncio.gather(
        cli(url, "audit", "tail", "--json", "--tenant", "t1@x", "--action", "tenant.*"),
        cli(url, "audit", "tail", "--actor", "cli:*", "--since", "1h", "-n", "5"),
        cli(url, "audit", "tail", "--since", "last tuesday"),
    )
    (c1, o1, e1), (c2, o2, e2), (c3, o3, e3) = results
    assert (c1, c2) == (0, 0), (e1, e2)
    rows = json.loads(o1)
    assert {r["tenant"] for r in rows} == {"t1@x"}
    assert [r["action"] for r in rows] == ["tenant.created", "tenant.stop", "tenant.start"]  # oldest first
    lines = o2.strip().splitlines()
    assert len(lines) == 1 and "cli:ops  tenant.start  t1@x  resolved" in lines[0]
    assert c3 == 2 and o3 == "" and one_error_line(e3, "--since")

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controlplane",
        "audit",
        "tail",
        "--follow",
        "--json",
        "--interval",
        "0.2",
        "--action",
        "orphan.*",
        env=cli_env(url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        await asyncio.sleep(0.5)
        async with db.transaction() as s:
            audit.record(
                s, actor="cli:ops", action="orphan.app.deleted", reason="cleanup", after={"app": "oc-x"}
            )
            audit.record(s, actor="worker", action="machine.started", tenant_id=a, reason="filtered out")
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        row = json.loads(line)
        assert row["action"] == "orphan.app.deleted" and row["after"] == {"app": "oc-x"}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        rest = await proc.stdout.read()
        assert rest == b""  # the filtered row never printed, nothing printed twice
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("fresh_database_url", ["postgresql"], indirect=True)
async def test_orphans_dry_run_then_delete_behind_a_typed_confirmation_and_reconcile_repairs(
    plane: tuple[str, Database], vault: Vault
) -> None:
    url, db = plane
    kept = await seed_tenant(db, vault, "o1@x")
    lost = await seed_tenant(db, vault, "o2@x")
    emu = emulator()
    async with running_fleet(db, url, emu) as fleet:
        await fleet.converge()
    mine, theirs = await fly_of(db, kept), await fly_of(db, lost)
    assert mine.app_name and theirs.app_name and theirs.machine_id
    async with emu.client() as http:  # by hand on Fly, outside the control plane
        for name in ("oc-stray", "someone-else"):
            assert (await http.post("/v1/apps", json={"name": name, "org_slug": ORG})).status_code < 300
        stray = await http.post(
            f"/v1/apps/{mine.app_name}/volumes",
            json=CreateVolumeRequest(name="data", region="iad", size_gb=1).model_dump(exclude_none=True),
        )
        assert stray.status_code < 300, stray.text
        stray_id = stray.json()["id"]
        extra = await http.post(f"/v1/apps/{mine.app_name}/machines", json=machine_body(region="iad"))
        assert extra.status_code < 300, extra.text
        extra_id = extra.json()["id"]
        gone = await http.delete(f"/v1/apps/{theirs.app_name}/machines/{theirs.machine_id}?force=true")
        assert gone.status_code < 300
    emu.advance(60.0)

    async with emu.serve() as fly_url:
        env = {"CP_FLY_API_URL": fly_url, "CP_FLY_API_TOKEN": FLY_TOKEN, "CP_FLY_ORG": ORG}
        (c1, o1, e1), (c2, o2, e2), (c3, _, e3), (c4, _, e4), (c7, o7, e7) = await asyncio.gather(
            cli(url, "orphans", "--json", **env),
            cli(url, "orphans", **env),
            cli(url, "orphans", "--delete", **env),
            cli(url, "orphans", "--delete", "--reason", "cleanup", "--confirm", "delete 1", **env),
            cli(url, "tenant", "show", "o2@x", "--json", "--live", **env),
        )
        assert (c1, c2, c7) == (0, 0, 0), (e1, e2, e7)
        shown = json.loads(o7)  # recorded: started; Fly now: destroyed, its volume free
        assert shown["observed"]["machine_id"] == theirs.machine_id and shown["live"]["error"] is None
        assert shown["live"]["machine"]["state"] in ("destroyed", "not found")
        assert shown["live"]["volume"]["attached_machine_id"] is None
        report = json.loads(o1)
        assert [a["app"] for a in report["orphan_apps"]] == ["oc-stray"]
        assert [(m["app"], m["machine_id"]) for m in report["orphan_machines"]] == [(mine.app_name, extra_id)]
        assert [(v["app"], v["volume_id"]) for v in report["orphan_volumes"]] == [(mine.app_name, stray_id)]
        assert report["missing"] == [
            {"tenant": "o2@x", "app": theirs.app_name, "resource": "machine", "id": theirs.machine_id}
        ]
        assert report["deletable"] == 3 and report["deleted"] == 0 and report["apps_scanned"] == 3
        assert "oc-stray" in o2 and "dry run: nothing deleted" in o2
        assert c3 == 2 and one_error_line(e3, "--reason")
        assert c4 == 3 and "--confirm" in e4
        assert emu.state.apps["oc-stray"].delete_at_mono is None  # nothing deleted
        assert emu.state.volumes[stray_id].state != "destroyed"
        assert emu.machines[extra_id].state != "destroyed"

        code, out, err = await cli(
            url, "orphans", "--delete", "--reason", "cleanup", stdin="delete 3\n", **env
        )
        assert code == 0 and "deleted 3 orphan(s)" in out, err

        # The missing machine: `reconcile --wait` runs the reconcile in the CLI's process, at once.
        wait_env = {
            **env,
            "CP_GATEWAY_URL_TEMPLATE": fly_url + "/gateway/{app}",
            "CP_WORKER_METRICS_PORT": "0",
        }
        (c5, o5, e5), (c6, _, e6) = await asyncio.gather(
            cli(url, "reconcile", "o2@x", "--wait", "--reason", "machine lost", **wait_env),
            cli(url, "reconcile", "--reason", "no tenant named", **wait_env),
        )
        assert c5 == 0, e5
        (run,) = json.loads(o5)["runs"]
        assert run["action"] in ("finish", "requeue") and run["error"] is None
        assert (await fly_of(db, lost)).machine_id not in (None, theirs.machine_id)
        assert c6 == 2 and one_error_line(e6, "EXTERNAL_ID")
    emu.advance(60.0)
    assert "oc-stray" not in emu.state.apps or emu.state.apps["oc-stray"].delete_at_mono is not None
    assert emu.state.volumes[stray_id].state == "destroyed"
    assert emu.machines[extra_id].state == "destroyed"
    assert "someone-else" in emu.state.apps  # not ours: never touched
    assert emu.machines[mine.machine_id].state == "started" and mine.volume_id in emu.state.volumes
    assert emu.state.volumes[mine.volume_id].state != "destroyed"
    deleted = [r for r in await audit_rows(db) if r.action.startswith("orphan.")]
    assert sorted(r.action for r in deleted) == [
        "orphan.app.deleted",
        "orphan.machine.deleted",
        "orphan.volume.deleted",
    ]
    assert all(r.actor.startswith("cli:") and r.reason == "cleanup" for r in deleted)


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
async def test_keys_rotate_and_status_as_json_with_an_audit_row(plane: tuple[str, Database]) -> None:
    url, db = plane
    old_ring = Vault([("k1", key_bytes(1))])  # every secret written under k1 only
    await seed_tenant(db, old_ring, "k@x", providers=("anthropic", "openai"))
    new_ring = ",".join(
        f"{kid}:{base64.b64encode(k).decode()}" for kid, k in (("k3", key_bytes(3)), ("k1", key_bytes(1)))
    )
    code, out, err = await cli(url, "keys", "rotate", "--json", "--batch-size", "1", CP_VAULT_KEYS=new_ring)
    assert code == 0, err
    report = json.loads(out)
    assert report["primary"] == "k3" and report["rewritten"] == 2 and report["remaining"] == 0
    code, out, err = await cli(url, "keys", "status", "--json", CP_VAULT_KEYS=new_ring)
    assert code == 0, err
    assert json.loads(out) == [
        {"key_id": "k1", "role": "decrypt-only", "secrets": 0},
        {"key_id": "k3", "role": "primary", "secrets": 2},
    ]
    (row,) = await audit_rows(db, action="vault.rotated")
    assert row.actor.startswith("cli:") and row.after is not None and row.after["rewritten"] == 2
