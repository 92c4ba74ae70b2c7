"""health: banners per subject (a provider, a channel), the channel_down kind

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = (
    "key_invalid",
    "key_no_credit",
    "key_missing",
    "agent_down",
    "agent_crashlooping",
    "grace_period_ending",
    "payment_failed",
)
NEW_KINDS = (*OLD_KINDS[:5], "channel_down", *OLD_KINDS[5:])


def _kind(values: Sequence[str]) -> sa.Enum:
    return sa.Enum(*values, name="banner_kind", native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.execute("UPDATE banners SET subject = '' WHERE subject IS NULL")
    with op.batch_alter_table("banners", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_banners_banner_kind"), type_="check")
        batch_op.drop_constraint(op.f("uq_banners_tenant_id_kind"), type_="unique")
        batch_op.alter_column("subject", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(
            op.f("uq_banners_tenant_id_kind_subject"), ["tenant_id", "kind", "subject"]
        )
        batch_op.create_check_constraint(op.f("ck_banners_banner_kind"), sa.column("kind").in_(NEW_KINDS))


def downgrade() -> None:
    # A second banner of one kind (another provider or channel) cannot survive the old unique key.
    op.execute("DELETE FROM banners WHERE kind = 'channel_down'")
    op.execute("DELETE FROM banners WHERE id NOT IN (SELECT MIN(id) FROM banners GROUP BY tenant_id, kind)")
    with op.batch_alter_table("banners", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_banners_banner_kind"), type_="check")
        batch_op.drop_constraint(op.f("uq_banners_tenant_id_kind_subject"), type_="unique")
        batch_op.alter_column("subject", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_unique_constraint(op.f("uq_banners_tenant_id_kind"), ["tenant_id", "kind"])
        batch_op.create_check_constraint(op.f("ck_banners_banner_kind"), sa.column("kind").in_(OLD_KINDS))
    op.execute("UPDATE banners SET subject = NULL WHERE subject = ''")
