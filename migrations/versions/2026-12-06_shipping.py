"""shipping: events' ship-by, orders' shipments and the `shipped` status

`events` gets `ship_within_days` (working days after the end; NULL: no promise) and
`ship_by` (the moment they add up to, fixed when the event is created or its end
moves), both set or neither. `orders` gets `shipped_at`, `carrier` and
`tracking_number`, and its status check admits `shipped`. A partial index on the paid,
not yet shipped, orders by event serves the overdue-shipments list.

Revision ID: i22_2
Revises: i21_5
Create Date: 2026-12-06 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i22_2"
down_revision: str | None = "i21_5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "'pending_payment', 'paid', 'cancelled', 'refunded'"
_AFTER = "'pending_payment', 'paid', 'shipped', 'cancelled', 'refunded'"


def upgrade() -> None:
    op.add_column("events", sa.Column("ship_within_days", sa.Integer(), nullable=True))
    op.add_column("events", sa.Column("ship_by", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_events_ship_by_with_its_days"),
        "events",
        "(ship_within_days IS NULL) = (ship_by IS NULL)",
    )
    op.create_index(op.f("ix_events_ship_by"), "events", ["ship_by"], unique=False)
    op.add_column("orders", sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("carrier", sa.String(length=64), nullable=True))
    op.add_column("orders", sa.Column("tracking_number", sa.String(length=128), nullable=True))
    op.drop_constraint(op.f("ck_orders_status_known"), "orders", type_="check")
    op.create_check_constraint(op.f("ck_orders_status_known"), "orders", f"status IN ({_AFTER})")
    op.create_index(
        "ix_orders_unshipped_event_id",
        "orders",
        ["event_id", "paid_at"],
        unique=False,
        postgresql_where=sa.text("status = 'paid'"),
    )


def downgrade() -> None:
    # A shipped order was paid: it goes back to paid (its shipment's columns go).
    op.execute("UPDATE orders SET status = 'paid' WHERE status = 'shipped'")
    op.drop_index("ix_orders_unshipped_event_id", table_name="orders")
    op.drop_constraint(op.f("ck_orders_status_known"), "orders", type_="check")
    op.create_check_constraint(op.f("ck_orders_status_known"), "orders", f"status IN ({_BEFORE})")
    op.drop_column("orders", "tracking_number")
    op.drop_column("orders", "carrier")
    op.drop_column("orders", "shipped_at")
    op.drop_index(op.f("ix_events_ship_by"), table_name="events")
    op.drop_constraint(op.f("ck_events_ship_by_with_its_days"), "events", type_="check")
    op.drop_column("events", "ship_by")
    op.drop_column("events", "ship_within_days")
