"""Fly emulator throughput: GET machine requests/s (in process and over loopback HTTP) and the
org-wide listing of 10,000 machines (time and pages). Rate limits off. Run:

    .venv/bin/python bench/bench_fly_emulator.py
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import httpx
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane.fly.emulator import EmulatorOptions, FlyEmulator
from controlplane.fly.emulator import apps as app_ops
from controlplane.fly.emulator import machines as machine_ops

GETS = 3000
CONCURRENCY = 16
FLEET = 10_000
PER_APP = 10
PAGE = 1000
IMAGE = "ghcr.io/openclaw/openclaw:2026.9.6"


def _options() -> EmulatorOptions:
    # "zero" is kinder than Fly (every transition instant): right for raw throughput, nowhere else.
    return EmulatorOptions(latency="zero", rate_limits=False, org="bench-org", token="bench-token", seed=1)


async def _one_machine(http: httpx.AsyncClient) -> str:
    await http.post("/v1/apps", json={"app_name": "bench-app", "org_slug": "bench-org"})
    created = await http.post(
        "/v1/apps/bench-app/machines", json={"region": "fra", "config": {"image": IMAGE}}
    )
    return f"/v1/apps/bench-app/machines/{created.json()['id']}"


async def _hammer(http: httpx.AsyncClient, path: str, total: int, concurrency: int) -> float:
    per_worker = total // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            response = await http.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"unexpected {response.status_code}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - started)


async def bench_in_process() -> float:
    emu = FlyEmulator(_options())
    async with emu.client() as http:
        path = await _one_machine(http)
        await _hammer(http, path, 200, 1)  # warm up
        return await _hammer(http, path, GETS, CONCURRENCY)


async def bench_loopback() -> float:
    emu = FlyEmulator(_options())
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with (
        emu.serve() as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": "Bearer bench-token"}, limits=limits
        ) as http,
    ):
        path = await _one_machine(http)
        await _hammer(http, path, 200, CONCURRENCY)
        return await _hammer(http, path, GETS, CONCURRENCY)


async def bench_org_listing() -> tuple[float, float, int, int]:
    emu = FlyEmulator(_options())
    world = emu.world
    started = time.perf_counter()
    for app_index in range(FLEET // PER_APP):
        name = f"tenant-{app_index:05d}"
        app_ops.create_app(world, {"app_name": name, "org_slug": "bench-org"})
        for machine_index in range(PER_APP):
            machine_ops.create_machine(
                world,
                name,
                {
                    "region": ("fra", "ams", "iad")[machine_index % 3],
                    "config": {"image": IMAGE, "metadata": {"control_plane_id": f"{name}-{machine_index}"}},
                },
            )
    seeded = time.perf_counter() - started
    async with emu.client() as http:
        pages, seen, cursor = 0, 0, ""
        started = time.perf_counter()
        while True:
            params = {"summary": "true", "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            response = await http.get("/v1/orgs/bench-org/machines", params=params)
            body = response.json()
            pages += 1
            seen += len(body["machines"])
            cursor = body["next_cursor"]
            if not cursor:
                break
        listed = time.perf_counter() - started
    return seeded, listed, pages, seen


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    in_process = await bench_in_process()
    print(
        f"GET machine, in-process transport : {in_process:8.0f} req/s  ({GETS} requests, {CONCURRENCY} concurrent)"
    )
    loopback = await bench_loopback()
    print(
        f"GET machine, loopback HTTP (uvicorn): {loopback:8.0f} req/s  ({GETS} requests, {CONCURRENCY} concurrent)"
    )
    seeded, listed, pages, seen = await bench_org_listing()
    print(
        f"org listing, {seen} machines         : {listed:8.2f} s for {pages} pages of {PAGE} "
        f"(summary=true; seeding {FLEET} machines took {seeded:.2f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
