"""What the worker process runs of billing, built once from settings.

``async with BillingRunner.open(db, settings, catalog) as billing:`` then, in the worker's loop,
``await billing.sync_once()`` (subscriptions marked by webhooks, re-read from Stripe), and each of
:meth:`BillingRunner.periodic` as a periodic job (``workers/scheduler.py`` runs each period once
across processes; the jobs are also safe if two run at once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx

from agents_config.catalog import PlanCatalog
from controlplane.billing.entitlement import BillingPolicy
from controlplane.billing.grace import BillingGraceReport, run_billing_grace_once
from controlplane.billing.keygrace import KeyGraceReport, run_key_grace_once
from controlplane.billing.notices import DeliveryReport, MailerClient, deliver_notices_once
from controlplane.billing.stripe_client import StripeClient
from controlplane.billing.sync import SyncDeps, SyncReport, default_owner, run_billing_sync_once
from controlplane.clock import Clock, SystemClock
from controlplane.db.session import Database
from controlplane.settings import Settings

PeriodicJob = tuple[str, float, Callable[[datetime], Awaitable[object]]]


@dataclass
class BillingRunner:
    deps: SyncDeps
    mailer: MailerClient | None
    owner: str

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        db: Database,
        settings: Settings,
        catalog: PlanCatalog,
        *,
        clock: Clock | None = None,
        owner: str | None = None,
        stripe_transport: httpx.AsyncBaseTransport | None = None,
        mailer_transport: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncIterator[BillingRunner]:
        """Raises :class:`~controlplane.settings.SettingsError` naming what is missing
        (``CP_STRIPE_SECRET_KEY``; ``CP_MAILER_WEBHOOK_SECRET`` when a mailer URL is set)."""
        clock = clock or SystemClock()
        mailer = MailerClient.from_settings(settings, transport=mailer_transport)
        try:
            async with StripeClient.from_settings(
                settings, transport=stripe_transport, clock=clock
            ) as stripe:
                deps = SyncDeps(
                    db=db,
                    stripe=stripe,
                    catalog=catalog,
                    policy=BillingPolicy.from_settings(settings),
                    clock=clock,
                    default_region=settings.fly_default_region,
                )
                yield cls(deps, mailer, owner or default_owner())
        finally:
            if mailer is not None:
                await mailer.aclose()

    async def sync_once(self, *, limit: int = 20) -> SyncReport:
        """Read the due marked subscriptions again and make their tenants follow them."""
        return await run_billing_sync_once(self.deps, owner=self.owner, limit=limit)

    async def billing_grace(self, now: datetime) -> BillingGraceReport:
        return await run_billing_grace_once(self.deps.db, now)

    async def key_grace(self, now: datetime) -> KeyGraceReport:
        return await run_key_grace_once(self.deps.db, now, catalog=self.deps.catalog)

    async def deliver_notices(self, now: datetime) -> DeliveryReport:
        return await deliver_notices_once(self.deps.db, self.mailer, now, owner=self.owner)

    def periodic(self) -> list[PeriodicJob]:
        """``(name, interval in seconds, run(now))`` of billing's periodic jobs."""
        return [
            ("billing_grace", 300.0, self.billing_grace),
            ("key_grace", 3600.0, self.key_grace),
            ("billing_notices", 60.0, self.deliver_notices),
        ]


__all__ = ["BillingRunner", "PeriodicJob"]
