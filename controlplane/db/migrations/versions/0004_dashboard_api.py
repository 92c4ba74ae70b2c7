"""dashboard API: agent usage per day, service cap reports, announcement dismissals, banner subject,
channel state observed by the agent

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:23:24.063558
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_usage_daily",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_microusd", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0 AND cache_read_tokens >= 0 AND cache_write_tokens >= 0 AND (cost_microusd IS NULL OR cost_microusd >= 0)",
            name=op.f("ck_agent_usage_daily_counts_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_agent_usage_daily_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "day", "provider", "model", name=op.f("pk_agent_usage_daily")),
    )
    op.create_table(
        "service_usage_reports",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("report_id", sa.String(length=128), nullable=False),
        sa.Column(
            "service",
            sa.Enum(
                "web_search",
                "browser_minutes",
                "email",
                "phone_minutes",
                name="usage_service",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("received_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 1", name=op.f("ck_service_usage_reports_amount_positive")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_service_usage_reports_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "report_id", name=op.f("pk_service_usage_reports")),
    )
    op.create_table(
        "announcement_dismissals",
        sa.Column("announcement_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("dismissed_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["announcement_id"],
            ["announcements.id"],
            name=op.f("fk_announcement_dismissals_announcement_id_announcements"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_announcement_dismissals_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("announcement_id", "tenant_id", name=op.f("pk_announcement_dismissals")),
    )
    with op.batch_alter_table("banners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject", sa.String(length=64), nullable=True))
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("observed_state", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("observed_detail", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("observed_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("observed_at")
        batch_op.drop_column("observed_detail")
        batch_op.drop_column("observed_state")
    with op.batch_alter_table("banners", schema=None) as batch_op:
        batch_op.drop_column("subject")

    op.drop_table("announcement_dismissals")
    op.drop_table("service_usage_reports")
    op.drop_table("agent_usage_daily")
