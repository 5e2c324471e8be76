"""lottery: lotteries, their prizes, every draw, every win and its payout, check-ins;
user_coupons may come from a lottery prize (source 'prize')

Revision ID: i21_5
Revises: i21_points_invites
Create Date: 2026-12-06 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i21_5"
down_revision: str | None = "i21_points_invites"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "check_ins",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("streak", sa.Integer(), nullable=False),
        sa.Column(
            "checked_in_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_check_ins")),
    )
    op.create_table(
        "lotteries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("draws_per_user_per_day", sa.Integer(), nullable=False),
        sa.Column("no_prize_weight", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "draws_per_user_per_day >= 1", name=op.f("ck_lotteries_draws_per_day_positive")
        ),
        sa.CheckConstraint(
            "no_prize_weight >= 0", name=op.f("ck_lotteries_no_prize_weight_not_negative")
        ),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_lotteries_window_ordered")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lotteries")),
    )
    op.create_index(op.f("ix_lotteries_ends_at"), "lotteries", ["ends_at"], unique=False)
    op.create_table(
        "lottery_prizes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("lottery_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("coupon_id", sa.BigInteger(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(kind = 'coupon') = (coupon_id IS NOT NULL)",
            name=op.f("ck_lottery_prizes_coupon_has_a_coupon"),
        ),
        sa.CheckConstraint(
            "(kind = 'points') = (points IS NOT NULL)",
            name=op.f("ck_lottery_prizes_points_has_points"),
        ),
        sa.CheckConstraint(
            "kind IN ('coupon', 'points', 'item')", name=op.f("ck_lottery_prizes_kind_known")
        ),
        sa.CheckConstraint(
            "points IS NULL OR points >= 1", name=op.f("ck_lottery_prizes_points_positive")
        ),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_lottery_prizes_quantity_not_negative")),
        sa.CheckConstraint("weight >= 0", name=op.f("ck_lottery_prizes_weight_not_negative")),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_lottery_prizes_coupon_id_coupons")
        ),
        sa.ForeignKeyConstraint(
            ["lottery_id"], ["lotteries.id"], name=op.f("fk_lottery_prizes_lottery_id_lotteries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lottery_prizes")),
    )
    op.create_index(
        op.f("ix_lottery_prizes_lottery_id"), "lottery_prizes", ["lottery_id"], unique=False
    )
    op.create_table(
        "lottery_draws",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("lottery_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("prize_id", sa.BigInteger(), nullable=True),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lottery_id"], ["lotteries.id"], name=op.f("fk_lottery_draws_lottery_id_lotteries")
        ),
        sa.ForeignKeyConstraint(
            ["prize_id"],
            ["lottery_prizes.id"],
            name=op.f("fk_lottery_draws_prize_id_lottery_prizes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lottery_draws")),
    )
    op.create_index(
        "ix_lottery_draws_lottery_id_day", "lottery_draws", ["lottery_id", "day"], unique=False
    )
    op.create_table(
        "lottery_wins",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("lottery_id", sa.BigInteger(), nullable=False),
        sa.Column("prize_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("won_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_coupon_id", sa.String(length=64), nullable=True),
        sa.Column("points_paid", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "(status = 'paid') = (paid_at IS NOT NULL)",
            name=op.f("ck_lottery_wins_paid_has_a_time"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'pending_approval', 'paid', 'rejected')",
            name=op.f("ck_lottery_wins_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["id"], ["lottery_draws.id"], name=op.f("fk_lottery_wins_id_lottery_draws")
        ),
        sa.ForeignKeyConstraint(
            ["lottery_id"], ["lotteries.id"], name=op.f("fk_lottery_wins_lottery_id_lotteries")
        ),
        sa.ForeignKeyConstraint(
            ["prize_id"],
            ["lottery_prizes.id"],
            name=op.f("fk_lottery_wins_prize_id_lottery_prizes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lottery_wins")),
        sa.UniqueConstraint("user_coupon_id", name=op.f("uq_lottery_wins_user_coupon_id")),
    )
    op.create_index(
        "ix_lottery_wins_lottery_id_status", "lottery_wins", ["lottery_id", "status"], unique=False
    )
    op.create_index(
        "ix_lottery_wins_user_id_won_at", "lottery_wins", ["user_id", "won_at"], unique=False
    )
    op.drop_constraint(op.f("ck_user_coupons_source_known"), "user_coupons", type_="check")
    op.create_check_constraint(
        op.f("ck_user_coupons_source_known"),
        "user_coupons",
        "source IN ('claim', 'grant', 'prize')",
    )


def downgrade() -> None:
    op.execute("DELETE FROM user_coupons WHERE source = 'prize'")
    op.drop_constraint(op.f("ck_user_coupons_source_known"), "user_coupons", type_="check")
    op.create_check_constraint(
        op.f("ck_user_coupons_source_known"), "user_coupons", "source IN ('claim', 'grant')"
    )
    op.drop_index("ix_lottery_wins_user_id_won_at", table_name="lottery_wins")
    op.drop_index("ix_lottery_wins_lottery_id_status", table_name="lottery_wins")
    op.drop_table("lottery_wins")
    op.drop_index("ix_lottery_draws_lottery_id_day", table_name="lottery_draws")
    op.drop_table("lottery_draws")
    op.drop_index(op.f("ix_lottery_prizes_lottery_id"), table_name="lottery_prizes")
    op.drop_table("lottery_prizes")
    op.drop_index(op.f("ix_lotteries_ends_at"), table_name="lotteries")
    op.drop_table("lotteries")
    op.drop_table("check_ins")
