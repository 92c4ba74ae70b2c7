"""A whole control plane against the Fly emulator, for end-to-end tests of the workers.

:func:`seed_tenant` writes a tenant's desired state the way the entry points do (one transaction:
tenant row, vault-encrypted keys and channel tokens, audit row, reconcile mark). :class:`Fleet`
runs the real :class:`workers.process.WorkerProcess` (the same assembly as ``controlplane worker``)
against an in-process emulator on the ``fast`` latency profile, sped up, with the probes served by
the emulator too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import string
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from controlplane.db.models import Channel, ProviderKey, Tenant
from controlplane.db.session import Database
from controlplane.desired import desired_state_changed
from controlplane.enums import KeyStatus, KeyVerdict, RoutingStrategy
from controlplane.fly.emulator import FlyEmulator
from controlplane.secrets_store import channel_secret_name, provider_secret_name, put_secret
from controlplane.settings import Settings, load_settings
from controlplane.vault import Vault
from tests.support.db import TEST_VAULT_KEYS
from tests.support.emulator import emulator as support_emulator
from workers.handler import Handled
from workers.process import WorkerProcess

EMULATOR_URL = "http://fly-emulator"
FLY_TOKEN = "fly-test-token-" + "0" * 16
ORG = "test-org"
SPEED = 25.0  # emulated seconds per real second


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def fake_key(provider: str) -> str:
    """A key of the provider's shape, made at run time (never a real one)."""
    return {
        "anthropic": lambda: "sk-ant-api03-" + _rand(93) + "AA",
        "openai": lambda: "sk-proj-" + _rand(24) + "T3BlbkFJ" + _rand(24),
        "google": lambda: "AIza" + _rand(35),
        "groq": lambda: "gsk_" + _rand(52),
    }[provider]()


def fake_channel_token(kind: str) -> str:
    return {
        "telegram": lambda: f"{secrets.randbelow(10**9):09d}:" + _rand(35),
        "discord": lambda: _rand(24) + "." + _rand(6) + "." + _rand(27),
        "slack": lambda: "xoxb-" + _rand(12, string.digits) + "-" + _rand(24),
    }[kind]()


async def add_key(db: Database, vault: Vault, tenant_id: str, provider: str, key: str | None = None) -> str:
    """Store a (validated) key the way the key service does, with its desired-state change."""
    key = key or fake_key(provider)
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None
        existing = await s.scalar(
            select(ProviderKey).where(ProviderKey.tenant_id == tenant_id, ProviderKey.provider == provider)
        )
        secret = await put_secret(
            s, vault, tenant_id=tenant_id, name=provider_secret_name(provider), plaintext=key
        )
        if existing is None:
            s.add(
                ProviderKey(
                    tenant_id=tenant_id,
                    provider=provider,
                    secret_id=secret.id,
                    last4=key[-4:],
                    fingerprint=vault.fingerprint(key),
                    verdict=KeyVerdict.ok,
                    status=KeyStatus.usable,
                )
            )
        else:
            existing.fingerprint, existing.last4, existing.status = (
                vault.fingerprint(key),
                key[-4:],
                KeyStatus.usable,
            )
        await desired_state_changed(s, tenant, actor="api", action="key.saved", after={"provider": provider})
    return key


async def seed_tenant(
    db: Database,
    vault: Vault,
    external_id: str,
    *,
    plan: str = "pro",
    region: str = "iad",
    providers: Iterable[str] = ("anthropic",),
    channels: Iterable[tuple[str, tuple[str, ...]]] = (),
    strategy: RoutingStrategy = RoutingStrategy.balanced,
) -> str:
    async with db.transaction() as s:
        tenant = Tenant(external_id=external_id, plan=plan, region=region, routing_strategy=strategy)
        s.add(tenant)
        await s.flush()
        for kind, allow_from in channels:
            secret = await put_secret(
                s,
                vault,
                tenant_id=tenant.id,
                name=channel_secret_name(kind),
                plaintext=fake_channel_token(kind),
            )
            s.add(
                Channel(
                    tenant_id=tenant.id,
                    kind=kind,
                    secret_id=secret.id,
                    settings={"allow_from": list(allow_from)},
                )
            )
        await desired_state_changed(s, tenant, actor="api", action="tenant.created", after={"plan": plan})
        tenant_id = tenant.id
    for provider in providers:
        await add_key(db, vault, tenant_id, provider)
    return tenant_id


def emulator(faults: str = "none", *, seed: int = 1, rate_limits: bool = True, **options: Any) -> FlyEmulator:
    """The Fly emulator of these tests (org and token of :func:`fleet_settings`), sped up."""
    options.setdefault("clock_speed", SPEED)
    return support_emulator(faults, seed=seed, rate_limits=rate_limits, org=ORG, token=FLY_TOKEN, **options)


def worker_env(database_url: str, fly_url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``controlplane worker`` subprocess against the emulator at ``fly_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CP_")}
    env.update(
        {
            "CP_DATABASE_URL": database_url,
            "CP_VAULT_KEYS": TEST_VAULT_KEYS,
            "CP_FLY_API_URL": fly_url,
            "CP_FLY_API_TOKEN": FLY_TOKEN,
            "CP_FLY_ORG": ORG,
            "CP_GATEWAY_URL_TEMPLATE": fly_url + "/gateway/{app}",
            "CP_WORKER_METRICS_PORT": "0",
            "CP_LOG_FORMAT": "json",
            **extra,
        }
    )
    return env


def fleet_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "vault_keys": TEST_VAULT_KEYS,
        "fly_api_token": FLY_TOKEN,
        "fly_api_url": EMULATOR_URL,
        "fly_org": ORG,
        "gateway_url_template": EMULATOR_URL + "/gateway/{app}",
        "worker_metrics_port": 0,
        "resync_interval_seconds": 1,  # the resync spreads its marks over half of it
        "full_resync_hours": 0,
        "reconcile_wait_seconds": 30,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Fleet:
    process: WorkerProcess
    emu: FlyEmulator
    handled: list[Handled] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.process.db

    @property
    def vault(self) -> Vault:
        return self.process.vault

    async def converge(self, *, timeout: float = 120.0, idle_horizon: float = 3.0) -> list[Handled]:
        """Run the worker until nothing is due within ``idle_horizon`` seconds."""
        start = len(self.handled)
        await asyncio.wait_for(
            self.process.worker.run(asyncio.Event(), until_idle=True, idle_horizon_seconds=idle_horizon),
            timeout,
        )
        return self.handled[start:]

    def fly_calls(self) -> int:
        return self.process.fly_calls.total()

    def calls(self, endpoint_part: str, method: str | None = None, *, succeeded: bool = True) -> int:
        """Fly calls to ``endpoint_part``: the exact endpoint when it starts with a method
        (``POST /v1/apps/{app}/machines``), else every endpoint containing it; 2xx answers only
        unless ``succeeded=False``."""
        exact = endpoint_part.split(" ", 1)[0] in ("GET", "POST", "PUT", "DELETE")
        total = 0
        for (endpoint, status), n in self.process.fly_calls.snapshot().items():
            if exact and endpoint != endpoint_part or not exact and endpoint_part not in endpoint:
                continue
            if method is not None and not endpoint.startswith(method + " "):
                continue
            if succeeded and not status.startswith("2"):
                continue
            total += n
        return total


@asynccontextmanager
async def running_fleet(
    db: Database,
    database_url: str,
    emu: FlyEmulator | None = None,
    *,
    concurrency: int = 16,
    provider_transport: httpx.AsyncBaseTransport | None = None,
    **settings: Any,
) -> AsyncIterator[Fleet]:
    emu = emu or emulator()
    handled: list[Handled] = []
    async with WorkerProcess.open(
        fleet_settings(database_url, **settings),
        fly_transport=emu.transport(),
        probe_transport=emu.transport(),
        fly_clock=emu.client_clock(jump=False),
        concurrency=concurrency,
        database=db,
        on_handled=handled.append,
        poll_seconds=0.2,
        reconciler_overrides={"look_again_seconds": 0.5},
        provider_transport=provider_transport,
    ) as process:
        yield Fleet(process=process, emu=emu, handled=handled)
