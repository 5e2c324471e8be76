"""an order's item belongs to its event: one composite foreign key

`orders(item_id, event_id)` now references `event_items(id, event_id)` (unique, a new
constraint on the small items table) instead of `item_id -> event_items` and
`event_id -> events` separately. Stronger (an order's event must be its item's event,
not any event) and cheaper: Postgres checks a foreign key with one query per inserted
row, and the order writer inserts tens of thousands of rows a second. A regular order
(no item, no event) is not checked, as before.

Revision ID: i12_1
Revises: i11_1
Create Date: 2026-12-05 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "i12_1"
down_revision: str | None = "i11_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_unique_constraint("uq_event_items_id_event_id", "event_items", ["id", "event_id"])
    op.drop_constraint("fk_orders_event_id_events", "orders", type_="foreignkey")
    op.drop_constraint("fk_orders_item_id_event_items", "orders", type_="foreignkey")
    op.create_foreign_key(
        "fk_orders_item_id_event_items",
        "orders",
        "event_items",
        ["item_id", "event_id"],
        ["id", "event_id"],
    )


def downgrade() -> None:
    op.drop_constraint("fk_orders_item_id_event_items", "orders", type_="foreignkey")
    op.create_foreign_key(
        "fk_orders_item_id_event_items", "orders", "event_items", ["item_id"], ["id"]
    )
    op.create_foreign_key("fk_orders_event_id_events", "orders", "events", ["event_id"], ["id"])
    op.drop_constraint("uq_event_items_id_event_id", "event_items", type_="unique")
