"""reconcile state and periodic job runs: one row per tenant with its lease, fencing generation, priority and outcome;
one parked_reason and one last_error (on the queue row only); tenant retention; volume size, volume
create tag and the digests of pushed secrets

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 08:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = controlplane.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", UTC_DATETIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", "period", name=op.f("pk_job_runs")),
    )
    with op.batch_alter_table("reconcile_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_reconcile_queue_due")
        batch_op.alter_column(
            "run_after", new_column_name="due_at", existing_type=sa.DateTime(timezone=True), nullable=True
        )
        batch_op.alter_column(
            "enqueued_at", new_column_name="marked_at", existing_type=sa.DateTime(timezone=True)
        )
        batch_op.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column(
                "lease_generation",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=False,
                server_default="0",
            )
        )
        batch_op.add_column(sa.Column("parked_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("last_outcome", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("last_run_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("last_duration_ms", sa.Integer(), nullable=True))
    # The server defaults only filled existing rows; the model supplies the values from now on.
    with op.batch_alter_table("reconcile_queue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reconcile_queue_due_at"), ["due_at"], unique=False)
        batch_op.create_check_constraint("attempts_non_negative", "attempts >= 0")
        batch_op.create_check_constraint("priority_known", "priority IN (0, 1)")
        batch_op.alter_column("priority", server_default=None, existing_type=sa.SmallInteger())
        batch_op.alter_column(
            "lease_generation",
            server_default=None,
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        )

    # One parked_reason (reconcile_queue) and one last_error (reconcile_queue): carry what the old
    # copies said over before dropping them.
    op.execute(
        "UPDATE reconcile_queue SET parked_reason = (SELECT t.parked_reason FROM tenants t "
        "WHERE t.id = reconcile_queue.tenant_id) WHERE parked_reason IS NULL"
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("parked_reason")
        batch_op.add_column(sa.Column("destroy_after", UTC_DATETIME, nullable=True))
    with op.batch_alter_table("fly_resources", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.add_column(sa.Column("volume_size_gb", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("volume_create_tag", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("secret_digests", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_table("job_runs")
    with op.batch_alter_table("fly_resources", schema=None) as batch_op:
        batch_op.drop_column("secret_digests")
        batch_op.drop_column("volume_create_tag")
        batch_op.drop_column("volume_size_gb")
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("destroy_after")
        batch_op.add_column(sa.Column("parked_reason", sa.Text(), nullable=True))
    op.execute(
        "UPDATE tenants SET parked_reason = (SELECT q.parked_reason FROM reconcile_queue q "
        "WHERE q.tenant_id = tenants.id)"
    )
    op.execute("UPDATE reconcile_queue SET due_at = marked_at WHERE due_at IS NULL")
    with op.batch_alter_table("reconcile_queue", schema=None) as batch_op:
        batch_op.drop_constraint("priority_known", type_="check")
        batch_op.drop_constraint("attempts_non_negative", type_="check")
        batch_op.drop_index(batch_op.f("ix_reconcile_queue_due_at"))
    with op.batch_alter_table("reconcile_queue", schema=None) as batch_op:
        batch_op.drop_column("last_duration_ms")
        batch_op.drop_column("last_run_at")
        batch_op.drop_column("last_outcome")
        batch_op.drop_column("parked_at")
        batch_op.drop_column("lease_generation")
        batch_op.drop_column("priority")
        batch_op.alter_column(
            "marked_at", new_column_name="enqueued_at", existing_type=sa.DateTime(timezone=True)
        )
        batch_op.alter_column(
            "due_at", new_column_name="run_after", existing_type=sa.DateTime(timezone=True), nullable=False
        )
    with op.batch_alter_table("reconcile_queue", schema=None) as batch_op:
        batch_op.create_index("ix_reconcile_queue_due", ["parked_reason", "run_after"], unique=False)
