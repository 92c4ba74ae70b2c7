"""rollouts: image rollouts, rollout items, tenant desired image and cohort

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:45:26.575382
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("max_in_flight", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "running",
                "paused",
                "done",
                "aborted",
                name="rollout_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("active", sa.SmallInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("rollback_of", sa.String(length=32), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("driver_owner", sa.String(length=128), nullable=True),
        sa.Column("driver_lease_until", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
        sa.UniqueConstraint("active", name=op.f("uq_rollouts_active")),
    )
    op.create_table(
        "rollout_items",
        sa.Column("rollout_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "in_flight",
                "done",
                "rolling_back",
                "rolled_back",
                "skipped",
                name="rollout_item_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("target_image", sa.String(length=512), nullable=False),
        sa.Column("previous_image", sa.String(length=512), nullable=True),
        sa.Column("previous_desired", sa.String(length=512), nullable=True),
        sa.Column("desired_rev", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("started_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("applied_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", controlplane.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_items_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rollout_id", "tenant_id", name=op.f("pk_rollout_items")),
    )
    with op.batch_alter_table("rollout_items", schema=None) as batch_op:
        batch_op.create_index("ix_rollout_items_progress", ["rollout_id", "state", "batch"], unique=False)
        batch_op.create_index(batch_op.f("ix_rollout_items_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("desired_image", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("cohort", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_tenants_cohort"), ["cohort"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenants_cohort"))
        batch_op.drop_column("cohort")
        batch_op.drop_column("desired_image")

    with op.batch_alter_table("rollout_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_items_tenant_id"))
        batch_op.drop_index("ix_rollout_items_progress")

    op.drop_table("rollout_items")
    op.drop_table("rollouts")
