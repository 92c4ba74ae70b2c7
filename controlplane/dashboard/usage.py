"""AI usage as the agent counted it: tokens and cost per tenant, UTC day, provider and model.

The health poller reads each agent's own usage report and stores the day's totals with
:func:`record_daily_usage` (an upsert: the latest totals of a day replace the earlier ones, so
reading the same report twice changes nothing). The dashboard API serves them with
:func:`usage_between`. Cost is kept in millionths of a US dollar (exact integers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import AgentUsageDaily, utcnow
from controlplane.db.upsert import upsert

MICRO = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class DailyUsage:
    """One provider/model's totals for one day, as the agent reported them."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_microusd: int | None = None  # None: the agent knew no price for the model

    def __post_init__(self) -> None:
        if not self.provider or len(self.provider) > 32 or not self.model or len(self.model) > 128:
            raise ValueError("provider (1-32 chars) and model (1-128 chars) are required")
        counts = (self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens)
        if min(counts) < 0 or (self.cost_microusd is not None and self.cost_microusd < 0):
            raise ValueError("token counts and cost must not be negative")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens


def usd_to_micro(usd: Decimal | float | str) -> int:
    """Dollars (as the agent prints them) to whole millionths, rounded half up."""
    return int((Decimal(str(usd)) / MICRO).to_integral_value(rounding="ROUND_HALF_UP"))


def micro_to_usd(micro: int) -> str:
    """Millionths of a dollar as a decimal string, e.g. ``"0.012345"``."""
    return str((Decimal(micro) * MICRO).quantize(MICRO))


async def record_daily_usage(
    session: AsyncSession,
    tenant_id: str,
    day: date,
    rows: Iterable[DailyUsage],
    *,
    now: datetime | None = None,
) -> int:
    """Store the agent's totals of ``day`` (UTC) for each provider/model; returns how many rows.
    Runs in the caller's transaction."""
    now = now or utcnow()
    count = 0
    for row in rows:
        values = {
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cache_read_tokens": row.cache_read_tokens,
            "cache_write_tokens": row.cache_write_tokens,
            "cost_microusd": row.cost_microusd,
            "updated_at": now,
        }
        stmt = upsert(session, AgentUsageDaily).values(
            tenant_id=tenant_id, day=day, provider=row.provider, model=row.model, **values
        )
        await session.execute(
            stmt.on_conflict_do_update(index_elements=["tenant_id", "day", "provider", "model"], set_=values)
        )
        count += 1
    return count


async def usage_between(
    session: AsyncSession, tenant_id: str, first: date, last: date
) -> list[tuple[date, DailyUsage]]:
    """The tenant's daily totals from ``first`` to ``last`` (inclusive), by day, provider, model."""
    rows = await session.scalars(
        select(AgentUsageDaily)
        .where(
            AgentUsageDaily.tenant_id == tenant_id,
            AgentUsageDaily.day >= first,
            AgentUsageDaily.day <= last,
        )
        .order_by(AgentUsageDaily.day, AgentUsageDaily.provider, AgentUsageDaily.model)
    )
    return [
        (
            r.day,
            DailyUsage(
                r.provider,
                r.model,
                r.input_tokens,
                r.output_tokens,
                r.cache_read_tokens,
                r.cache_write_tokens,
                r.cost_microusd,
            ),
        )
        for r in rows
    ]


__all__ = ["DailyUsage", "micro_to_usd", "record_daily_usage", "usage_between", "usd_to_micro"]
