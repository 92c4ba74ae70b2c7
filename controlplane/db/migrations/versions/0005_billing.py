"""billing: sync queue, notices outbox, plan migrations, the tenant's key grace start

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:23:32.699954
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_sync_queue",
        sa.Column("subscription_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("tenant_ref", sa.String(length=255), nullable=True),
        sa.Column("last_event_id", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("run_after", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("requeue", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("enqueued_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_billing_sync_queue")),
    )
    with op.batch_alter_table("billing_sync_queue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_billing_sync_queue_run_after"), ["run_after"], unique=False)

    op.create_table(
        "plan_migrations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lock_owner", sa.String(length=128), nullable=True),
        sa.Column("lock_expires_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_migrations")),
    )
    op.create_table(
        "billing_notices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deliver_after", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_billing_notices_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_notices")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_billing_notices_dedupe_key")),
    )
    with op.batch_alter_table("billing_notices", schema=None) as batch_op:
        batch_op.create_index("ix_billing_notices_outbox", ["delivered_at", "deliver_after"], unique=False)
        batch_op.create_index(batch_op.f("ix_billing_notices_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "plan_migration_items",
        sa.Column("migration_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=255), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("from_plan", sa.String(length=64), nullable=False),
        sa.Column("to_plan", sa.String(length=64), nullable=False),
        sa.Column("from_price_id", sa.String(length=255), nullable=True),
        sa.Column("to_price_id", sa.String(length=255), nullable=False),
        sa.Column("from_amount", sa.BigInteger(), nullable=True),
        sa.Column("to_amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "planned",
                "switching",
                "done",
                "reversing",
                "reversed",
                name="migration_item_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("key_grace_started", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("done_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["migration_id"],
            ["plan_migrations.id"],
            name=op.f("fk_plan_migration_items_migration_id_plan_migrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("migration_id", "subscription_id", name=op.f("pk_plan_migration_items")),
    )
    with op.batch_alter_table("plan_migration_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_migration_items_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_grace_started_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("key_grace_started_at")

    with op.batch_alter_table("plan_migration_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_migration_items_tenant_id"))

    op.drop_table("plan_migration_items")
    with op.batch_alter_table("billing_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_notices_tenant_id"))
        batch_op.drop_index("ix_billing_notices_outbox")

    op.drop_table("billing_notices")
    op.drop_table("plan_migrations")
    with op.batch_alter_table("billing_sync_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_sync_queue_run_after"))

    op.drop_table("billing_sync_queue")
