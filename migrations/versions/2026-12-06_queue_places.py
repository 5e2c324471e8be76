"""queue_places: every place in a waiting room, with its score and its admission

Revision ID: i20_3
Revises: i20_2
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i20_3"
down_revision: str | None = "i20_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_places",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column(
            "joined_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_queue_places_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_places")),
        sa.UniqueConstraint("event_id", "user_id", name=op.f("uq_queue_places_event_id_user_id")),
    )


def downgrade() -> None:
    op.drop_table("queue_places")
