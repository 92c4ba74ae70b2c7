"""The worker process, assembled in one place: ``controlplane worker``, the demo, the deploy smoke
test and the end-to-end tests all run THIS (one path, no demo-only copy).

:meth:`WorkerProcess.open` builds the parts from the settings (database, vault, Fly client with
call counting, plan catalog, reconciler, queue, worker, scheduler); :meth:`WorkerProcess.run` runs
the worker loop, the periodic jobs (the listing resync every ``CP_RESYNC_INTERVAL_SECONDS``, the full
resync every ``CP_FULL_RESYNC_HOURS``, billing's where Stripe is configured, and the health sweep, key
re-validation, re-encryption, pruning and audit retention of :mod:`workers.jobs`), the image
rollout driver (``workers/rollout.py``), the PostgreSQL wake-up listener and the ``/metrics`` +
``/healthz`` endpoint until stopped (SIGTERM/SIGINT in :func:`run_until_signalled`) or idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents_config import PlanCatalog, load_catalog
from controlplane.billing.runner import BillingRunner
from controlplane.byok.service import KeyService
from controlplane.byok.validate import KeyValidator
from controlplane.clock import Clock, SystemClock
from controlplane.db.queue import ReconcileQueue
from controlplane.db.session import Database
from controlplane.fly import FlyClient
from controlplane.settings import Settings, SettingsError
from controlplane.vault import Vault
from workers.handler import Handled
from workers.health import HealthConfig, HealthSweeper
from workers.jobs import Housekeeping
from workers.metrics import REGISTRY, CountingTransport
from workers.notify import listen_for_marks
from workers.reconciler import ReconcilerConfig, TenantReconciler
from workers.resync import ResyncReport, full_resync, resync_once
from workers.rollout import RolloutConfig, RolloutDriver
from workers.scheduler import Job, Scheduler
from workers.worker import Worker, worker_id

log = structlog.get_logger(__name__)


@dataclass
class WorkerProcess:
    settings: Settings
    db: Database
    vault: Vault
    fly: FlyClient
    fly_calls: CountingTransport
    catalog: PlanCatalog
    probes: httpx.AsyncClient
    reconciler: TenantReconciler
    queue: ReconcileQueue
    worker: Worker
    scheduler: Scheduler
    clock: Clock
    billing: BillingRunner | None = None
    rollouts: RolloutDriver | None = None
    last_resync: ResyncReport | None = None
    housekeeping: Housekeeping | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        *,
        fly_transport: httpx.AsyncBaseTransport | None = None,
        probe_transport: httpx.AsyncBaseTransport | None = None,
        fly_clock: Any = None,
        clock: Clock | None = None,
        concurrency: int | None = None,
        owner: str | None = None,
        reconciler_overrides: Mapping[str, Any] | None = None,
        fly_options: Mapping[str, Any] | None = None,
        database: Database | None = None,
        on_handled: Callable[[Handled], None] | None = None,
        poll_seconds: float = 1.0,
        stripe_transport: httpx.AsyncBaseTransport | None = None,
        provider_transport: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncIterator[WorkerProcess]:
        clock = clock or SystemClock()
        owner = owner or worker_id()
        db = database or Database.from_url(
            settings.database_url, echo=settings.database_echo, pool_size=settings.database_pool_size
        )
        counting = CountingTransport(fly_transport or httpx.AsyncHTTPTransport(retries=0))
        if settings.fly_api_token is None:
            raise SettingsError("CP_FLY_API_TOKEN is not set: the worker needs a Fly org token")
        fly = FlyClient(
            token=settings.fly_api_token,
            base_url=str(settings.fly_api_url),
            org=settings.fly_org,
            transport=counting,
            max_concurrency=settings.fly_max_concurrency,
            clock=fly_clock,
            rate_limit_scale=settings.fly_rate_limit_scale,
            **dict(fly_options or {}),
        )
        probes = httpx.AsyncClient(transport=probe_transport, timeout=5.0, follow_redirects=False)
        catalog = load_catalog(settings.plan_catalog)
        config = ReconcilerConfig.from_settings(settings)
        if reconciler_overrides:
            config = replace(config, **dict(reconciler_overrides))
        vault = Vault.from_settings(settings)
        reconciler = TenantReconciler(db, vault, fly, catalog, config, probes=probes, clock=clock)
        queue = ReconcileQueue(db, clock=clock, lease_seconds=settings.worker_lease_seconds)
        worker = Worker(
            queue,
            reconciler.reconcile,
            concurrency=concurrency or settings.worker_concurrency,
            owner=owner,
            poll_seconds=poll_seconds,
            shutdown_seconds=settings.worker_shutdown_seconds,
            on_handled=on_handled,
        )
        process = cls(
            settings=settings,
            db=db,
            vault=vault,
            fly=fly,
            fly_calls=counting,
            catalog=catalog,
            probes=probes,
            reconciler=reconciler,
            queue=queue,
            worker=worker,
            scheduler=Scheduler(db, [], owner=owner, clock=clock),
            clock=clock,
        )
        keys = KeyService(db, vault, KeyValidator(settings, transport=provider_transport), clock=clock.now)
        sweeper = HealthSweeper(
            db, vault, fly, catalog, probes, HealthConfig.from_settings(settings), clock=clock
        )
        process.housekeeping = Housekeeping(
            settings, db, vault, keys, queue, process.scheduler, sweeper, clock
        )
        sweeper.recheck = process.housekeeping.recheck
        process.rollouts = RolloutDriver(
            db, fly, probes, RolloutConfig.from_settings(settings), owner=owner, clock=clock, wake=worker.wake
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                if settings.stripe_secret_key is not None:  # billing runs where Stripe is configured
                    process.billing = await stack.enter_async_context(
                        BillingRunner.open(
                            db, settings, catalog, clock=clock, owner=owner, stripe_transport=stripe_transport
                        )
                    )
                process.scheduler.jobs = process.jobs()
                yield process
        finally:
            await probes.aclose()
            await fly.aclose()
            if database is None:
                await db.dispose()

    def jobs(self) -> list[Job]:
        jobs = [Job("resync", self.settings.resync_interval_seconds, self._resync, lease_seconds=300.0)]
        hours = self.settings.full_resync_hours
        if hours > 0:
            jobs.append(Job("full_resync", hours * 3600, self._full_resync))
        if self.billing is not None:
            jobs += [Job(name, interval, run) for name, interval, run in self.billing.periodic()]
        if self.housekeeping is not None:
            jobs += self.housekeeping.jobs()
        return jobs

    async def _resync(self, _period: Any) -> None:
        self.last_resync = await resync_once(
            self.db,
            self.fly,
            self.catalog,
            now=self.clock.now(),
            spread_seconds=min(10.0, self.settings.resync_interval_seconds / 2),
            rng=random.Random(),
        )

    async def _full_resync(self, _period: Any) -> None:
        await full_resync(self.queue, spread_seconds=self.settings.full_resync_hours * 3600)

    async def run(
        self, stop: asyncio.Event, *, until_idle: bool = False, idle_horizon_seconds: float = 30.0
    ) -> None:
        """The worker loop plus its companions, until ``stop`` (or idle with ``until_idle``)."""
        companions_stop = asyncio.Event()
        companions = [
            asyncio.create_task(self.scheduler.run_forever(companions_stop), name="scheduler"),
            asyncio.create_task(
                listen_for_marks(self.settings.database_url, self.worker.wake, companions_stop), name="notify"
            ),
            asyncio.create_task(self._publish_stats(companions_stop), name="queue-stats"),
        ]
        if self.billing is not None:
            companions.append(asyncio.create_task(self._billing_sync(companions_stop), name="billing-sync"))
        if self.rollouts is not None:
            companions.append(asyncio.create_task(self.rollouts.run(companions_stop), name="rollouts"))
        try:
            await self.worker.run(stop, until_idle=until_idle, idle_horizon_seconds=idle_horizon_seconds)
        finally:
            companions_stop.set()
            await asyncio.gather(*companions, return_exceptions=True)

    async def _billing_sync(self, stop: asyncio.Event) -> None:
        """Subscriptions marked by webhooks, re-read from Stripe (each at most once at a time across
        processes: the billing queue leases them); polls while idle."""
        assert self.billing is not None
        while not stop.is_set():
            try:
                report = await self.billing.sync_once()
            except Exception as exc:  # Stripe or the database unreachable: try again shortly
                log.warning("billing.sync_failed", error=f"{type(exc).__name__}")
                report = None
            if report is None or report.claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.worker.poll_seconds)

    async def _publish_stats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await self.worker.publish_queue_stats()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=10.0)

    # -- /metrics and /healthz ------------------------------------------------------------------
    def health_app(self) -> Callable[..., Any]:
        worker = self.worker

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            path = scope.get("path", "")
            if path == "/metrics":
                status, body, ctype = 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST
            elif path == "/healthz":
                alive = time.monotonic() - worker.last_loop < max(30.0, worker.poll_seconds * 10)
                status = 200 if alive else 503
                body = b'{"ok":true}' if alive else b'{"ok":false,"reason":"worker loop stalled"}'
                ctype = "application/json"
            else:
                status, body, ctype = 404, b'{"error":"not found"}', "application/json"
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", ctype.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        return app

    @contextlib.asynccontextmanager
    async def serving_health(
        self, host: str = "0.0.0.0", port: int | None = None
    ) -> AsyncIterator[int | None]:
        """Serve /metrics and /healthz on ``port`` (settings' worker_metrics_port; 0 = off)."""
        port = self.settings.worker_metrics_port if port is None else port
        if not port:
            yield None
            return
        import uvicorn

        config = uvicorn.Config(
            self.health_app(), host=host, port=port, log_config=None, access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            yield port
        finally:
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)


async def run_until_signalled(process: WorkerProcess, *, until_idle: bool = False) -> None:
    """Run ``process`` until SIGTERM/SIGINT (graceful: leases finished or released) or idle."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with process.serving_health():
            await process.run(stop, until_idle=until_idle)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


__all__ = ["WorkerProcess", "run_until_signalled"]
