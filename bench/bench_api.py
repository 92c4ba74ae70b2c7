"""Dashboard API benchmark: requests per second and p50/p99 latency on loopback for a status read,
a cap check and a key save (the provider faked by a local HTTP server), on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_api.py [--tenants 300] [--requests 2000] [--saves 300]
                                        [--concurrency 1] [--postgres URL]

The API runs as `controlplane serve` in a subprocess (uvicorn, JSON access logs) on a migrated
database of its own (a temporary SQLite file; a throw-away PostgreSQL database). Latency is measured
by the client (httpx over loopback, one connection per concurrent worker) and, from the server's
access log, inside the app; the server's CPU time per request (from /proc) is printed too, as the
one figure other load on the machine does not inflate. Targets (issue 11, on PostgreSQL): cap check p99 < 5 ms, status read
p99 < 10 ms. Numbers depend on the machine and its load; compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from controlplane.db.models import FlyResources, ServiceUsage, Tenant  # noqa: E402
from controlplane.db.queue import mark_for_reconcile  # noqa: E402
from controlplane.db.session import Database  # noqa: E402
from controlplane.enums import LifecycleState, UsageService  # noqa: E402

TOKEN = "bench-service-token-" + "b" * 20
VAULT_KEYS = "k1:" + "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # 32 x 0x01: a throw-away key
TARGETS_PG = {"cap check": 5.0, "status read": 10.0}  # p99 ms
#: workload, req/s, client p50, p99, in-app p50, p99 (ms), server CPU ms per request
Row = tuple[str, float, float, float, float, float, float]
ROUTES = {
    "status read": "/v1/tenants/{external_id}/status",
    "cap check": "/v1/tenants/{external_id}/caps/{service}",
    "key save": "/v1/tenants/{external_id}/keys/{provider}",
}
KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeProvider:
    """A loopback HTTP server answering every request like a provider's model listing (200)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        body = b'{"object":"list","data":[{"id":"model-1","type":"model"}]}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._answer, "127.0.0.1", self.port))
        self.loop.run_forever()
        server.close()

    def start(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def openai_key(rng: random.Random) -> str:
    left = "".join(rng.choice(KEY_ALPHABET) for _ in range(40))
    right = "".join(rng.choice(KEY_ALPHABET) for _ in range(40))
    return "sk-" + "proj-" + left + "T3Blbk" + "FJ" + right


async def seed(url: str, tenants: int) -> list[str]:
    db = Database.from_url(url)
    ids = [uuid.uuid4().hex for _ in range(tenants)]
    external = [f"bench-{i:05d}" for i in range(tenants)]
    period = time.strftime("%Y-%m", time.gmtime())
    try:
        async with db.transaction() as s:
            await s.execute(
                insert(Tenant),
                [
                    {
                        "id": tid,
                        "external_id": ext,
                        "plan": ("starter", "pro", "power")[i % 3],
                        "region": "iad",
                        "lifecycle_state": LifecycleState.running,
                    }
                    for i, (tid, ext) in enumerate(zip(ids, external, strict=True))
                ],
            )
            await s.execute(
                insert(FlyResources),
                [
                    {
                        "tenant_id": tid,
                        "app_name": f"oc-bench-{i}",
                        "machine_id": f"m{i:013d}",
                        "observed_rev": 1,
                    }
                    for i, tid in enumerate(ids)
                ],
            )
            await s.execute(
                insert(ServiceUsage),
                [
                    {"tenant_id": tid, "service": UsageService.web_search, "period": period, "used": i % 50}
                    for i, tid in enumerate(ids)
                ],
            )
            for tid in ids:
                await mark_for_reconcile(s, tid, "bench")
    finally:
        await db.dispose()
    return external


async def measure(
    label: str,
    indices: range,
    concurrency: int,
    make: Callable[[int], tuple[str, str, dict[str, object] | None]],
    client: httpx.AsyncClient,
) -> list[float]:
    """Send ``make(i)`` for every i (``concurrency`` at a time); returns [req/s, *sorted ms]."""
    latencies: list[float] = []
    counter = iter(indices)

    async def worker() -> None:
        for i in counter:
            method, url, body = make(i)
            t0 = time.perf_counter()
            r = await client.request(method, url, json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"{label}: {method} {url} answered {r.status_code}: {r.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return [len(indices) / elapsed, *latencies]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): a cost that load does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


def server_side(log_path: Path, route: str, skip: int) -> list[float]:
    values = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and '"http.request"' in line:
            entry = json.loads(line)
            if entry.get("route") == route:
                values.append(float(entry["duration_ms"]))
    return sorted(values[skip:])


async def bench_backend(
    label: str, url: str, provider_url: str, args: argparse.Namespace, workdir: Path
) -> list[Row]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CP_")}
    env.update(
        CP_DATABASE_URL=url,
        CP_API_TOKENS=TOKEN,
        CP_VAULT_KEYS=VAULT_KEYS,
        CP_OPENAI_BASE_URL=provider_url,
        CP_LOG_FORMAT="json",
        PYTHONPATH=str(REPO),
    )
    upgrade = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controlplane",
        "db",
        "upgrade",
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if await upgrade.wait() != 0:
        raise RuntimeError(f"controlplane db upgrade failed on {label}")
    tenants = await seed(url, args.tenants)
    port = free_port()
    log_path = workdir / f"api-{label}.log"
    with log_path.open("w") as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "controlplane",
            "serve",
            "--port",
            str(port),
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        async with httpx.AsyncClient(
            base_url=base,
            headers={"authorization": f"Bearer {TOKEN}"},
            limits=httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency),
            timeout=30,
        ) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            rng = random.Random(7)
            keys = [openai_key(rng) for _ in range(args.saves + 100)]
            cases: dict[str, tuple[int, Callable[[int], tuple[str, str, dict[str, object] | None]]]] = {
                "status read": (
                    args.requests,
                    lambda i: ("GET", f"/v1/tenants/{tenants[i % len(tenants)]}/status", None),
                ),
                "cap check": (
                    args.requests,
                    lambda i: ("GET", f"/v1/tenants/{tenants[(i * 7) % len(tenants)]}/caps/web_search", None),
                ),
                "key save": (
                    args.saves,
                    lambda i: (
                        "PUT",
                        f"/v1/tenants/{tenants[i % len(tenants)]}/keys/openai",
                        {"key": keys[i]},
                    ),
                ),
            }
            for name, (count, make) in cases.items():
                warm = min(50, count // 10)  # first connections, caches: not measured
                await measure(name, range(warm), 1, make, client)
                cpu_before = cpu_seconds(server.pid)
                result = await measure(name, range(warm, warm + count), args.concurrency, make, client)
                cpu_ms = (cpu_seconds(server.pid) - cpu_before) * 1000 / count
                rate, latencies = result[0], result[1:]
                inside = server_side(log_path, ROUTES[name], warm)
                p50, p99 = pct(latencies, 50), pct(latencies, 99)
                rows.append((name, rate, p50, p99, pct(inside, 50), pct(inside, 99), cpu_ms))
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), 60)
    return rows


def print_rows(label: str, rows: list[Row], concurrency: int) -> None:
    load = os.getloadavg()[0]
    print(
        f"\n{label} (loopback, concurrency {concurrency}; load average {load:.1f} on {os.cpu_count()} cores)"
    )
    print(
        f"  {'':<12} {'req/s':>8}  {'p50 ms':>7} {'p99 ms':>7}   {'in app p50':>10} {'p99':>6}"
        f"   {'server CPU/req':>14}   target"
    )
    for name, rate, p50, p99, s50, s99, cpu in rows:
        target = TARGETS_PG.get(name) if label == "PostgreSQL" else None
        verdict = ""
        if target is not None:
            verdict = f"p99 < {target:g} ms: {'met' if p99 < target else 'MISSED'}"
        print(
            f"  {name:<12} {rate:>8,.0f}  {p50:>7.2f} {p99:>7.2f}   {s50:>10.2f} {s99:>6.2f}"
            f"   {cpu:>11.2f} ms   {verdict}"
        )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--requests", type=int, default=2000, help="per read workload")
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    provider = FakeProvider()
    provider_url = provider.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            rows = await bench_backend(
                "SQLite", f"sqlite:///{workdir / 'bench.db'}", provider_url, args, workdir
            )
            print_rows("SQLite", rows, args.concurrency)
            try:
                import asyncpg

                name = f"cp_bench_{uuid.uuid4().hex[:10]}"
                admin = await asyncpg.connect(args.postgres)
                await admin.execute(f'CREATE DATABASE "{name}"')
            except Exception as exc:  # not reachable: report and go on
                print(f"\nPostgreSQL: skipped ({type(exc).__name__}: not reachable at the given URL)")
                return 0
            try:
                pg_url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
                rows = await bench_backend("PostgreSQL", pg_url, provider_url, args, workdir)
                print_rows("PostgreSQL", rows, args.concurrency)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
    finally:
        provider.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
