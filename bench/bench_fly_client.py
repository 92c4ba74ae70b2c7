"""Overhead of the Fly client per call, against an in-memory httpx.MockTransport.

    .venv/bin/python bench/bench_fly_client.py [--calls N]

Compares, for a canned machine answer:
  raw      httpx.AsyncClient.get + response.json()            (the floor)
  client   FlyClient.get_machine (pacing disabled)             (auth, semaphore, tenacity, pydantic)
  paced    FlyClient.get_machine with pacing on, distinct ids (+ token bucket bookkeeping)
  error    FlyClient.get_machine answered 404 (classification + FlyNotFound)
and prints µs/call. Runs in a few seconds; no network.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane.fly import FlyClient, FlyNotFound

MACHINE = {
    "id": "148ed193b95089",
    "name": "gateway",
    "state": "started",
    "region": "iad",
    "instance_id": "01J9Z3Q4K2M5N6P7Q8R9S0T1U2",
    "private_ip": "fdaa:0:1:a7b:1::2",
    "created_at": "2026-11-21T10:00:00Z",
    "updated_at": "2026-11-21T10:00:05Z",
    "config": {
        "image": "ghcr.io/openclaw/openclaw:2026.9.6",
        "guest": {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048},
        "env": {"OPENCLAW_GATEWAY_PORT": "18789", "NODE_ENV": "production"},
        "metadata": {"cp_create_tag": "01J9Z3Q4K2", "tenant": "42", "observed_rev": "7"},
        "services": [
            {
                "protocol": "tcp",
                "internal_port": 18789,
                "autostop": True,
                "autostart": True,
                "ports": [{"port": 443, "handlers": ["tls", "http"]}],
            }
        ],
        "checks": {"startupz": {"type": "http", "port": 18789, "path": "/startupz", "interval": "15s"}},
        "restart": {"policy": "on-failure", "max_retries": 10},
        "mounts": [{"volume": "vol_123", "path": "/data"}],
    },
    "checks": [{"name": "startupz", "status": "passing", "output": "ok"}],
    "events": [{"id": "01J9", "type": "start", "status": "started", "source": "user", "timestamp": 1}],
    "host_status": "ok",
}


def handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/missing"):
        return httpx.Response(404, json={"error": "machine not found"}, headers={"fly-request-id": "r"})
    return httpx.Response(200, json=MACHINE, headers={"fly-request-id": "r"})


async def timed(label: str, calls: int, fn) -> float:  # type: ignore[no-untyped-def]
    for i in range(min(200, calls)):  # warm-up
        await fn(i)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(calls):
            await fn(i)
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    best = min(rounds)
    print(f"  {label:<8} {best:8.1f} µs/call   (median {statistics.median(rounds):.1f})")
    return best


async def main(calls: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    base = "http://fly.bench"
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=base + "/v1") as raw:

        async def raw_call(i: int) -> None:
            response = await raw.get("/apps/a/machines/148ed193b95089")
            response.json()

        async with (
            FlyClient(
                token="fm2_bench", base_url=base, transport=httpx.MockTransport(handler), rate_limiting=False
            ) as fly,
            FlyClient(token="fm2_bench", base_url=base, transport=httpx.MockTransport(handler)) as paced,
        ):

            async def client_call(i: int) -> None:
                await fly.get_machine("a", "148ed193b95089")

            async def paced_call(i: int) -> None:
                await paced.get_machine("a", f"m{i}")  # distinct ids: buckets never make us wait

            async def error_call(i: int) -> None:
                try:
                    await fly.get_machine("a", "missing")
                except FlyNotFound:
                    pass

            print(f"Fly client overhead, {calls} calls x 5 rounds, best round (httpx.MockTransport):")
            floor = await timed("raw", calls, raw_call)
            typed = await timed("client", calls, client_call)
            await timed("paced", calls, paced_call)
            await timed("error", calls, error_call)
            print(
                f"  client overhead over raw httpx: {typed - floor:.1f} µs/call "
                f"({typed / floor:.2f}x), includes pydantic parsing of a full machine"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
