"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 13:45:43.327738
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("member_early_access_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "member_early_access_seconds >= 0", name=op.f("ck_events_early_access_not_negative")
        ),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_events_window_ordered")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_ends_at"), "events", ["ends_at"], unique=False)
    op.create_index(op.f("ix_events_starts_at"), "events", ["starts_at"], unique=False)
    op.create_table(
        "skus",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("on_hand >= 0", name=op.f("ck_skus_on_hand_not_negative")),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_skus")),
    )
    op.create_table(
        "event_items",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("list_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("seckill_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), nullable=False),
        sa.CheckConstraint("list_price > 0", name=op.f("ck_event_items_list_price_positive")),
        sa.CheckConstraint(
            "per_user_limit >= 1", name=op.f("ck_event_items_per_user_limit_positive")
        ),
        sa.CheckConstraint(
            "seckill_price <= list_price", name=op.f("ck_event_items_seckill_price_not_above_list")
        ),
        sa.CheckConstraint("seckill_price > 0", name=op.f("ck_event_items_seckill_price_positive")),
        sa.CheckConstraint("stock > 0", name=op.f("ck_event_items_stock_positive")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_items_event_id_events")
        ),
        sa.ForeignKeyConstraint(["sku"], ["skus.sku"], name=op.f("fk_event_items_sku_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_items")),
        sa.UniqueConstraint("event_id", "sku", name=op.f("uq_event_items_event_id_sku")),
    )
    op.create_index(op.f("ix_event_items_event_id"), "event_items", ["event_id"], unique=False)
    op.create_index(op.f("ix_event_items_sku"), "event_items", ["sku"], unique=False)
    op.create_table(
        "inventory_ledger",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("on_hand_delta", sa.Integer(), server_default="0", nullable=False),
        sa.Column("item_stock_delta", sa.Integer(), server_default="0", nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["event_items.id"], name=op.f("fk_inventory_ledger_item_id_event_items")
        ),
        sa.ForeignKeyConstraint(["sku"], ["skus.sku"], name=op.f("fk_inventory_ledger_sku_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_ledger")),
    )
    op.create_index(
        op.f("ix_inventory_ledger_item_id"), "inventory_ledger", ["item_id"], unique=False
    )
    op.create_index(op.f("ix_inventory_ledger_sku"), "inventory_ledger", ["sku"], unique=False)
    op.create_index(
        "uq_inventory_ledger_order_reason",
        "inventory_ledger",
        ["order_id", "reason"],
        unique=True,
        postgresql_where=sa.text("order_id IS NOT NULL"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payment_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_reference", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending_payment', 'paid', 'cancelled', 'refunded')",
            name=op.f("ck_orders_status_known"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_orders_event_id_events")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["event_items.id"], name=op.f("fk_orders_item_id_event_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "user_id",
            "item_id",
            "idempotency_key",
            name=op.f("uq_orders_user_id_item_id_idempotency_key"),
        ),
    )
    op.create_index(op.f("ix_orders_event_id"), "orders", ["event_id"], unique=False)
    op.create_index(op.f("ix_orders_item_id"), "orders", ["item_id"], unique=False)
    op.create_index(
        "ix_orders_payment_deadline_pending",
        "orders",
        ["payment_deadline"],
        unique=False,
        postgresql_where=sa.text("status = 'pending_payment'"),
    )
    op.create_index(
        "ix_orders_user_id_id", "orders", ["user_id", sa.literal_column("id DESC")], unique=False
    )
    op.create_table(
        "order_transitions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=False),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("cause", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_transitions_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_transitions")),
    )
    op.create_index(
        op.f("ix_order_transitions_order_id"), "order_transitions", ["order_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_order_transitions_order_id"), table_name="order_transitions")
    op.drop_table("order_transitions")
    op.drop_index("ix_orders_user_id_id", table_name="orders")
    op.drop_index(
        "ix_orders_payment_deadline_pending",
        table_name="orders",
        postgresql_where=sa.text("status = 'pending_payment'"),
    )
    op.drop_index(op.f("ix_orders_item_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_event_id"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(
        "uq_inventory_ledger_order_reason",
        table_name="inventory_ledger",
        postgresql_where=sa.text("order_id IS NOT NULL"),
    )
    op.drop_index(op.f("ix_inventory_ledger_sku"), table_name="inventory_ledger")
    op.drop_index(op.f("ix_inventory_ledger_item_id"), table_name="inventory_ledger")
    op.drop_table("inventory_ledger")
    op.drop_index(op.f("ix_event_items_sku"), table_name="event_items")
    op.drop_index(op.f("ix_event_items_event_id"), table_name="event_items")
    op.drop_table("event_items")
    op.drop_table("skus")
    op.drop_index(op.f("ix_events_starts_at"), table_name="events")
    op.drop_index(op.f("ix_events_ends_at"), table_name="events")
    op.drop_table("events")
