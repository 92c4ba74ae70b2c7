"""Billing notices to tenants: recorded exactly once, delivered to the operator's mailer.

:func:`record_notice` inserts a ``billing_notices`` row under a unique ``dedupe_key`` (``INSERT ...
ON CONFLICT DO NOTHING RETURNING``): of any number of processes recording the same notice at once,
exactly one gets ``True`` and does the work that goes with it, in the same transaction.

The table is also an outbox: :func:`deliver_notices_once` leases undelivered rows, POSTs each to
``CP_MAILER_WEBHOOK_URL`` as JSON, signed like Stripe signs its webhooks (``X-Controlplane-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "t.body" with CP_MAILER_WEBHOOK_SECRET>``), with the notice id as
``Idempotency-Key`` (delivery is at least once: the mailer dedupes on it), and retries failures with
backoff. No mailer configured: notices stay recorded (and shown as announcements), nothing is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.billing._sql import claim_leased, insert_for, table_of
from controlplane.db.models import BillingNotice, new_id
from controlplane.db.session import Database
from controlplane.retry import Backoff
from controlplane.settings import Settings

log = structlog.get_logger(__name__)

_T = table_of(BillingNotice)
SIGNATURE_HEADER = "X-Controlplane-Signature"
MAX_ATTEMPTS = 20


async def record_notice(
    session: AsyncSession,
    *,
    tenant_id: str,
    kind: str,
    dedupe_key: str,
    payload: Mapping[str, Any],
    now: datetime,
    deliver: bool = True,
) -> bool:
    """Record a notice once. ``True`` only for the caller that inserted it. ``deliver=False``
    records it as already handled (nothing is sent)."""
    inserted = await session.scalar(
        insert_for(session, _T)
        .values(
            id=new_id(),
            dedupe_key=dedupe_key[:255],
            tenant_id=tenant_id,
            kind=kind[:64],
            payload=dict(payload),
            created_at=now,
            deliver_after=now,
            delivered_at=None if deliver else now,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(_T.c.id)
    )
    return inserted is not None


def sign(body: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class MailerError(Exception):
    """The mailer did not take the notice (retried later)."""


class MailerClient:
    """POSTs notices to the operator's mailer webhook."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._secret = secret
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> MailerClient | None:
        """``None`` when no mailer is configured."""
        if settings.mailer_webhook_url is None:
            return None
        if settings.mailer_webhook_secret is None:
            from controlplane.settings import SettingsError

            raise SettingsError("CP_MAILER_WEBHOOK_SECRET is not set: notices to the mailer are signed")
        return cls(
            str(settings.mailer_webhook_url),
            settings.mailer_webhook_secret.get_secret_value(),
            transport=transport,
        )

    def __repr__(self) -> str:
        return "<MailerClient>"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, notice: Mapping[str, Any], now: datetime) -> None:
        body = json.dumps(notice, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self._secret, int(now.timestamp())),
            "Idempotency-Key": str(notice["id"]),
        }
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise MailerError(f"mailer: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise MailerError(f"mailer: HTTP {response.status_code}")


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    failed: int = 0


async def deliver_notices_once(
    db: Database,
    mailer: MailerClient | None,
    now: datetime,
    *,
    owner: str,
    limit: int = 50,
    lease: timedelta = timedelta(seconds=60),
    backoff: Backoff = Backoff(initial=30.0, factor=2.0, cap=3600.0),
    rng: random.Random | None = None,
) -> DeliveryReport:
    """Send up to ``limit`` due notices (see the module docstring)."""
    report = DeliveryReport()
    if mailer is None:
        return report
    async with db.transaction() as session:
        rows = await claim_leased(
            session,
            _T,
            key="id",
            due=(_T.c.delivered_at.is_(None)) & (_T.c.deliver_after <= now) & (_T.c.attempts < MAX_ATTEMPTS),
            order_by=[_T.c.deliver_after, _T.c.id],
            owner=owner,
            now=now,
            until=now + lease,
            limit=limit,
        )
    for row in rows:
        notice = {
            "id": row.id,
            "kind": row.kind,
            "tenant_id": row.tenant_id,
            "created_at": row.created_at.isoformat(),
            "payload": row.payload,
        }
        mine = (_T.c.id == row.id) & (_T.c.lease_owner == owner)
        try:
            await mailer.send(notice, now)
        except MailerError as exc:
            delay = timedelta(seconds=backoff.delay(row.attempts, rng))
            async with db.transaction() as session:
                await session.execute(
                    update(_T)
                    .where(mine)
                    .values(
                        lease_owner=None,
                        lease_expires_at=None,
                        attempts=_T.c.attempts + 1,
                        deliver_after=now + delay,
                        last_error=str(exc),
                    )
                )
            log.warning(
                "billing.notice_delivery_failed",
                notice_id=row.id,
                kind=row.kind,
                error=str(exc),
                attempts=row.attempts + 1,
            )
            report.failed += 1
            continue
        async with db.transaction() as session:
            await session.execute(
                update(_T)
                .where(mine)
                .values(delivered_at=now, lease_owner=None, lease_expires_at=None, last_error=None)
            )
        log.info("billing.notice_delivered", notice_id=row.id, kind=row.kind)
        report.sent += 1
    return report


__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryReport",
    "MailerClient",
    "MailerError",
    "deliver_notices_once",
    "record_notice",
    "sign",
]
