"""counter generations: which live counters Redis was given, and their newest epoch

A Redis that lacks an entity's counters has either never been given them (a new sale, to
load now) or lost them (an empty or older Redis, to freeze and rebuild): only Postgres can
tell which, so every build is remembered here. Existing sales and coupons count as built
(epoch 0): they are in Redis already, and if Redis lost them that is a loss.

Revision ID: i17_1
Revises: i12_1
Create Date: 2026-12-06 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i17_1"
down_revision: str | None = "i12_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "counter_generations",
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column(
            "built_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("family", "entity_id", name="pk_counter_generations"),
    )
    op.execute(
        "INSERT INTO counter_generations (family, entity_id, epoch) "
        "SELECT 'sale', id, 0 FROM event_items"
    )
    op.execute(
        "INSERT INTO counter_generations (family, entity_id, epoch) "
        "SELECT 'claims', id, 0 FROM coupons"
    )


def downgrade() -> None:
    op.drop_table("counter_generations")
