"""The record formats purchase.lua writes, and their one decoder each.

- The stream entry (KEYS[4] of purchase.lua, the order writer's input): a hash of
  `order_id, user_id, event_id, item_id, quantity, unit_price, accepted_ms` and
  `idempotency_key` (empty for none), decoded into a NewOrder.
- The queued record (KEYS[5], the `queued` hash): order id ->
  "quantity|unit price|event id|accepted ms|user id" (user id last: it may hold any
  character), decoded into a QueuedOrder.
- The idempotency record (KEYS[3]): "first order id|quantity", an IdempotencyRecord; the
  warm-up writes it again for stored orders when it rebuilds a sale.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple


def _from_ms(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


class NewOrder(NamedTuple):
    """An accepted order as the order stream carries it (a named tuple: the writer
    decodes one per order, at half the cost of a frozen dataclass)."""

    id: str
    user_id: str
    event_id: int
    item_id: int
    quantity: int
    unit_price: Decimal
    accepted_at: datetime
    idempotency_key: str | None


def parse_order(fields: dict[str, str]) -> NewOrder | None:
    """A stream entry's order, or None if the entry is not a readable order (a missing
    field, a number that is not one, a price that is not finite, a time no clock has)."""
    try:
        order = NewOrder(
            fields["order_id"],
            fields["user_id"],
            int(fields["event_id"]),
            int(fields["item_id"]),
            int(fields["quantity"]),
            Decimal(fields["unit_price"]),
            _from_ms(fields["accepted_ms"]),
            fields.get("idempotency_key") or None,
        )
    # fromtimestamp raises OverflowError or OSError for a time out of the platform's range.
    except (KeyError, ValueError, InvalidOperation, OverflowError, OSError):
        return None
    return order if order.unit_price.is_finite() else None


@dataclass(frozen=True, slots=True)
class QueuedOrder:
    """An order accepted but not yet in Postgres, as the `queued` hash holds it."""

    id: str
    item_id: int
    user_id: str
    event_id: int
    quantity: int
    unit_price: Decimal
    accepted_at: datetime


def parse_queued(order_id: str, item_id: int, entry: str) -> QueuedOrder:
    quantity, unit_price, event_id, accepted_ms, user_id = entry.split("|", 4)
    return QueuedOrder(
        id=order_id,
        item_id=item_id,
        user_id=user_id,
        event_id=int(event_id),
        quantity=int(quantity),
        unit_price=Decimal(unit_price),
        accepted_at=_from_ms(accepted_ms),
    )


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What purchase.lua keeps per (user, Idempotency-Key): the first order's id and
    quantity ("id|quantity"; a record from before quantities were kept is the id alone)."""

    order_id: str
    quantity: int | None

    def encode(self) -> str:
        return self.order_id if self.quantity is None else f"{self.order_id}|{self.quantity}"


def parse_idempotency_record(value: str) -> IdempotencyRecord:
    order_id, _, quantity = value.partition("|")
    return IdempotencyRecord(order_id, int(quantity) if quantity else None)
