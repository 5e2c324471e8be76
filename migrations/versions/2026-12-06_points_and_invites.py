"""points and invites: the points ledger and balances, invite codes and accepted invites

Revision ID: i21_points_invites
Revises: i21_2
Create Date: 2026-12-06 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i21_points_invites"
down_revision: str | None = "i21_2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "point_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("shortfall", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("shortfall >= 0", name=op.f("ck_point_entries_shortfall_not_negative")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_point_entries_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_entries")),
        sa.UniqueConstraint("reason", "reference", name=op.f("uq_point_entries_reason_reference")),
    )
    op.create_index(op.f("ix_point_entries_order_id"), "point_entries", ["order_id"], unique=False)
    op.create_index(
        "ix_point_entries_user_id_id",
        "point_entries",
        ["user_id", sa.text("id DESC")],
        unique=False,
    )
    op.create_table(
        "point_balances",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_point_balances_balance_not_negative")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_point_balances")),
    )
    op.create_table(
        "invite_codes",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_invite_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_invite_codes_code")),
    )
    op.create_table(
        "invites",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("inviter_id", sa.String(length=128), nullable=False),
        sa.Column("invitee_id", sa.String(length=128), nullable=False),
        sa.Column(
            "accepted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("reward_status", sa.String(length=20), server_default="waiting", nullable=False),
        sa.Column("rewarded_order_id", sa.String(length=64), nullable=True),
        sa.Column("reward_job_id", sa.BigInteger(), nullable=True),
        sa.Column("reward_error", sa.String(length=500), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("inviter_id <> invitee_id", name=op.f("ck_invites_not_self")),
        sa.CheckConstraint(
            "reward_status IN ('waiting', 'granted', 'failed')",
            name=op.f("ck_invites_reward_status_known"),
        ),
        sa.CheckConstraint(
            "(reward_status = 'waiting') = (rewarded_order_id IS NULL)",
            name=op.f("ck_invites_paid_when_decided"),
        ),
        sa.ForeignKeyConstraint(
            ["code"], ["invite_codes.code"], name=op.f("fk_invites_code_invite_codes")
        ),
        sa.ForeignKeyConstraint(
            ["rewarded_order_id"], ["orders.id"], name=op.f("fk_invites_rewarded_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["reward_job_id"], ["jobs.id"], name=op.f("fk_invites_reward_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invites")),
        sa.UniqueConstraint("invitee_id", name=op.f("uq_invites_invitee_id")),
    )
    op.create_index(op.f("ix_invites_inviter_id"), "invites", ["inviter_id"], unique=False)
    op.create_index(
        op.f("ix_invites_rewarded_order_id"), "invites", ["rewarded_order_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invites_rewarded_order_id"), table_name="invites")
    op.drop_index(op.f("ix_invites_inviter_id"), table_name="invites")
    op.drop_table("invites")
    op.drop_table("invite_codes")
    op.drop_table("point_balances")
    op.drop_index("ix_point_entries_user_id_id", table_name="point_entries")
    op.drop_index(op.f("ix_point_entries_order_id"), table_name="point_entries")
    op.drop_table("point_entries")
