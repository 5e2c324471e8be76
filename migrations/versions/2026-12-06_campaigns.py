"""campaigns: phases, versioned rules, channels, approvals; promotions; orders stamped

Events and coupons may belong to a campaign (coupons also take the phase their claim
window is and a `valid_from`); promotions are new; every order records its campaign, the
rules version in force when it was accepted, its channel, and the daily promotion place
it took.

Revision ID: i19_1
Revises: i17_5
Create Date: 2026-12-06 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "i19_1"
down_revision: str | None = "i17_5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_MONEY = sa.Numeric(12, 2)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("warm_up_starts_at", _TS, nullable=True),
        sa.Column("warm_up_ends_at", _TS, nullable=True),
        sa.Column("peak_starts_at", _TS, nullable=False),
        sa.Column("peak_ends_at", _TS, nullable=False),
        sa.Column("return_starts_at", _TS, nullable=True),
        sa.Column("return_ends_at", _TS, nullable=True),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("rules_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("target_gmv", _MONEY, nullable=True),
        sa.Column("target_orders", sa.Integer(), nullable=True),
        sa.Column("target_new_buyers", sa.Integer(), nullable=True),
        sa.Column("baseline_campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("submitted_by", sa.String(length=128), nullable=True),
        sa.Column("submission", sa.Integer(), server_default="0", nullable=False),
        sa.Column("approved_at", _TS, nullable=True),
        sa.Column("created_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_approval', 'approved')",
            name=op.f("ck_campaigns_status_known"),
        ),
        sa.CheckConstraint("peak_starts_at < peak_ends_at", name=op.f("ck_campaigns_peak_ordered")),
        sa.CheckConstraint(
            "(warm_up_starts_at IS NULL) = (warm_up_ends_at IS NULL)",
            name=op.f("ck_campaigns_warm_up_whole"),
        ),
        sa.CheckConstraint(
            "(return_starts_at IS NULL) = (return_ends_at IS NULL)",
            name=op.f("ck_campaigns_return_whole"),
        ),
        sa.CheckConstraint("rules_version >= 1", name=op.f("ck_campaigns_rules_version_positive")),
        sa.ForeignKeyConstraint(
            ["baseline_campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaigns_baseline_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_table(
        "campaign_channels",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("cost", _MONEY, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_channels_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", "code", name=op.f("pk_campaign_channels")),
    )
    op.create_table(
        "campaign_rules",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_rules_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "version", name=op.f("pk_campaign_rules")),
    )
    op.create_table(
        "campaign_approvals",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("submission", sa.Integer(), nullable=False),
        sa.Column("approver_group", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_approvals_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_approvals")),
        sa.UniqueConstraint(
            "campaign_id",
            "submission",
            "approver_group",
            name=op.f("uq_campaign_approvals_campaign_id_submission_approver_group"),
        ),
        sa.UniqueConstraint(
            "campaign_id",
            "submission",
            "actor",
            name=op.f("uq_campaign_approvals_campaign_id_submission_actor"),
        ),
    )
    op.create_index(
        op.f("ix_campaign_approvals_campaign_id"), "campaign_approvals", ["campaign_id"]
    )
    op.create_table(
        "promotions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("amount_off", _MONEY, nullable=False),
        sa.Column("min_spend", _MONEY, nullable=False),
        sa.Column("scope_skus", postgresql.ARRAY(sa.String(length=64)), nullable=True),
        sa.Column("scope_categories", postgresql.ARRAY(sa.String(length=64)), nullable=True),
        sa.Column("starts_at", _TS, nullable=False),
        sa.Column("ends_at", _TS, nullable=False),
        sa.Column("daily_limit", sa.Integer(), nullable=False),
        sa.Column("per_user_daily_limit", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_promotions_window_ordered")),
        sa.CheckConstraint("amount_off > 0", name=op.f("ck_promotions_amount_off_positive")),
        sa.CheckConstraint("min_spend >= 0", name=op.f("ck_promotions_min_spend_not_negative")),
        sa.CheckConstraint("daily_limit >= 1", name=op.f("ck_promotions_daily_limit_positive")),
        sa.CheckConstraint(
            "per_user_daily_limit >= 1", name=op.f("ck_promotions_per_user_daily_limit_positive")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_promotions_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
    )
    op.create_index(op.f("ix_promotions_campaign_id"), "promotions", ["campaign_id"])
    op.create_index(op.f("ix_promotions_ends_at"), "promotions", ["ends_at"])

    op.add_column("events", sa.Column("campaign_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_events_campaign_id_campaigns"), "events", "campaigns", ["campaign_id"], ["id"]
    )
    op.create_index(op.f("ix_events_campaign_id"), "events", ["campaign_id"])

    op.add_column("coupons", sa.Column("campaign_id", sa.BigInteger(), nullable=True))
    op.add_column("coupons", sa.Column("phase", sa.String(length=20), nullable=True))
    op.add_column("coupons", sa.Column("valid_from", _TS, nullable=True))
    op.create_foreign_key(
        op.f("fk_coupons_campaign_id_campaigns"), "coupons", "campaigns", ["campaign_id"], ["id"]
    )
    op.create_index(op.f("ix_coupons_campaign_id"), "coupons", ["campaign_id"])

    op.add_column("orders", sa.Column("campaign_id", sa.BigInteger(), nullable=True))
    op.add_column("orders", sa.Column("rules_version", sa.Integer(), nullable=True))
    op.add_column("orders", sa.Column("channel", sa.String(length=32), nullable=True))
    op.add_column("orders", sa.Column("promotion_id", sa.BigInteger(), nullable=True))
    op.add_column("orders", sa.Column("promotion_day", sa.Date(), nullable=True))
    op.create_index(op.f("ix_orders_campaign_id"), "orders", ["campaign_id"])
    op.create_index(op.f("ix_orders_promotion_id"), "orders", ["promotion_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_orders_promotion_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_campaign_id"), table_name="orders")
    for column in ("promotion_day", "promotion_id", "channel", "rules_version", "campaign_id"):
        op.drop_column("orders", column)
    op.drop_index(op.f("ix_coupons_campaign_id"), table_name="coupons")
    op.drop_constraint(op.f("fk_coupons_campaign_id_campaigns"), "coupons", type_="foreignkey")
    for column in ("valid_from", "phase", "campaign_id"):
        op.drop_column("coupons", column)
    op.drop_index(op.f("ix_events_campaign_id"), table_name="events")
    op.drop_constraint(op.f("fk_events_campaign_id_campaigns"), "events", type_="foreignkey")
    op.drop_column("events", "campaign_id")
    op.drop_table("promotions")
    op.drop_table("campaign_approvals")
    op.drop_table("campaign_rules")
    op.drop_table("campaign_channels")
    op.drop_table("campaigns")
