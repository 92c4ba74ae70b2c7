"""Deploy smoke test: deploy/Procfile's `release`, `serve` and `worker` commands, run as a Procfile
runner does (``sh -c "exec <command>"``, so SIGTERM reaches the process), against the local
PostgreSQL, the Fly emulator and the local fake of Stripe's API, each on a loopback port.

A customer checks out (a signed ``checkout.session.completed`` delivery to the running API's
webhook); the worker's billing sync re-reads the subscription and creates the tenant on the
platform-key catalog (no user key needed), the worker provisions it on the emulator, and the API
reports it running. Then SIGTERM: both processes stop cleanly (exit 0)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import agents_config
from agents_config.catalog import load_catalog
from controlplane.billing.deliveries import checkout_delivery
from controlplane.billing.webhook_route import PATH as WEBHOOK_PATH
from tests.support.billing import API_KEY, SECRET, fake_stripe_for
from tests.support.db import POSTGRES_URL, pg_admin
from tests.support.fleet import emulator, fake_key, worker_env

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "deploy" / "Procfile"
CATALOG = Path(agents_config.__file__).parent / "catalogs" / "platform-tiers.toml"
API_TOKEN = "smoke-" + "t" * 32


def procfile() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    name = f"cp_smoke_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def start(command: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    out = log.open("wb")
    try:
        return await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", "exec " + command, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    finally:
        out.close()


async def until(what, timeout: float, every: float = 0.3) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await what():
            return True
        await asyncio.sleep(every)
    return False


async def test_procfile_serve_and_worker_provision_a_checkout_and_stop_on_sigterm(
    postgres_url: str, tmp_path: Path
) -> None:
    commands = procfile()
    assert {"release", "serve", "worker"} <= set(commands)
    api_port, metrics_port = free_port(), free_port()
    emu = emulator(clock_speed=25.0)
    stripe = fake_stripe_for(load_catalog(CATALOG))
    async with emu.serve() as fly_url, stripe.serve() as stripe_url:
        env = worker_env(
            postgres_url,
            fly_url,
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            PORT=str(api_port),
            CP_WORKER_METRICS_PORT=str(metrics_port),
            CP_API_TOKENS=API_TOKEN,
            CP_STRIPE_SECRET_KEY=API_KEY,
            CP_STRIPE_API_BASE=stripe_url,
            CP_STRIPE_WEBHOOK_SECRET=SECRET,
            CP_PLAN_CATALOG=str(CATALOG),
            CP_PLATFORM_KEYS=f"anthropic={fake_key('anthropic')}",
            CP_WORKER_SHUTDOWN_SECONDS="5",  # a run still in flight gets 5 s, then its lease back
        )
        release = await start(commands["release"], env, tmp_path / "release.log")
        assert await asyncio.wait_for(release.wait(), 120) == 0, (tmp_path / "release.log").read_text()

        serve = await start(commands["serve"], env, tmp_path / "serve.log")
        worker = await start(commands["worker"], env, tmp_path / "worker.log")
        api_url = f"http://127.0.0.1:{api_port}"
        try:
            async with httpx.AsyncClient(base_url=api_url, timeout=10.0) as api:

                async def answers(url: str) -> bool:
                    try:
                        return (await api.get(url)).status_code == 200
                    except httpx.TransportError:
                        return False

                assert await until(lambda: answers("/readyz"), 120), (tmp_path / "serve.log").read_text()
                assert await until(lambda: answers(f"http://127.0.0.1:{metrics_port}/healthz"), 120), (
                    tmp_path / "worker.log"
                ).read_text()[-3000:]

                checkout = await checkout_delivery(
                    stripe_url,
                    webhook_secret=SECRET,
                    external_id="smoke-1",
                    price_id="price_platform_premium_monthly",
                    email="smoke@example.com",
                    api_key=API_KEY,
                )
                hook = await api.post(WEBHOOK_PATH, content=checkout.body, headers=checkout.headers)
                assert hook.status_code == 200, hook.text

                status: dict[str, object] = {}

                async def running() -> bool:
                    response = await api.get(
                        "/v1/tenants/smoke-1/status", headers={"Authorization": f"Bearer {API_TOKEN}"}
                    )
                    if response.status_code != 200:
                        return False
                    status.update(response.json())
                    return status["lifecycle_state"] == "running"

                assert await until(running, 120, every=0.5), (
                    status,
                    (tmp_path / "worker.log").read_text()[-3000:],
                )
            machine = status["machine"]
            assert isinstance(machine, dict) and machine["state"] == "started"
            assert status["plan"] == "premium" and status["drift"] is False
            assert emu.machines[machine["machine_id"]].state == "started"
        finally:
            for proc in (serve, worker):
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(p.wait(), 60) for p in (serve, worker)]
        assert codes == [0, 0], [(tmp_path / f).read_text()[-2000:] for f in ("serve.log", "worker.log")]
        assert b"worker.stopped" in (tmp_path / "worker.log").read_bytes()
