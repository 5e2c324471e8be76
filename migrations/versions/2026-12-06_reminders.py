"""reminders: subscriptions to a sale's reminder, and the delivery outbox's batches

Revision ID: i21_2
Revises: i21_1
Create Date: 2026-12-06 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i21_2"
down_revision: str | None = "i21_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reminder_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_reminder_batches_status_known")
        ),
        sa.CheckConstraint("size > 0", name=op.f("ck_reminder_batches_size_positive")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_reminder_batches_event_id_events")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_batches")),
    )
    op.create_index(
        op.f("ix_reminder_batches_event_id"), "reminder_batches", ["event_id"], unique=False
    )
    op.create_index(
        "ix_reminder_batches_due",
        "reminder_batches",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "reminder_subscriptions",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column(
            "subscribed_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("batch_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["reminder_batches.id"],
            name=op.f("fk_reminder_subscriptions_batch_id_reminder_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_reminder_subscriptions_event_id_events")
        ),
        sa.PrimaryKeyConstraint("event_id", "user_id", name=op.f("pk_reminder_subscriptions")),
    )
    op.create_index(
        op.f("ix_reminder_subscriptions_batch_id"),
        "reminder_subscriptions",
        ["batch_id"],
        unique=False,
    )
    op.create_index(
        "ix_reminder_subscriptions_unbatched",
        "reminder_subscriptions",
        ["event_id", "user_id"],
        unique=False,
        postgresql_where=sa.text("batch_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("reminder_subscriptions")
    op.drop_table("reminder_batches")
