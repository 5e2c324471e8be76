"""The record formats the Lua scripts write, and their one decoder each.

purchase.lua's:

- The stream entry (KEYS[4] of purchase.lua, the order writer's input): a hash of
  `order_id, user_id, event_id, item_id, quantity, unit_price, accepted_ms`,
  `idempotency_key` (empty for none), `rules_version` (the campaign's rules version in
  force, empty for none), `channel` (the X-Channel code, empty for none) and `member`
  ("1": a member's order, at the member price if the item has one), decoded into a
  NewOrder. Entries written before campaigns lack the last three, before members the last.
- The queued record (KEYS[5], the `queued` hash): order id ->
  "quantity|unit price|event id|accepted ms|user id" (user id last: it may hold any
  character), decoded into a QueuedOrder.
- The idempotency record (KEYS[3]): "first order id|quantity", an IdempotencyRecord; the
  warm-up writes it again for stored orders when it rebuilds a sale.

claim.lua's (a coupon claim, decoded into a NewClaim):
- The stream entry (KEYS[4], the order writer's input): a hash of `claim_id, coupon_id,
  user_id, claimed_ms, valid_until_ms` and `idempotency_key` (empty for none).
- The queued record (KEYS[5]): claim id -> "valid until ms|claimed ms|user id".

queue.lua's (a waiting room's new place, decoded into a NewPlace):
- The stream entry (KEYS[4], the order writer's input): a hash of `event_id, user_id,
  score, joined_ms`.
- The queued record (KEYS[5]): user id -> "score|joined ms".

lottery_draw.lua's (a draw, won or not, decoded into a NewDraw):
- The stream entry (KEYS[5], the order writer's input): a hash of `draw_id, lottery_id,
  user_id, day` (ISO date), `prize_id` (empty: no win) and `drawn_ms`.
- The queued record (KEYS[6]): draw id -> "prize id|day|drawn ms|user id".
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from app.moments import from_ms


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
    rules_version: int | None = None
    channel: str | None = None
    member: bool = False


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
            from_ms(int(fields["accepted_ms"])),
            fields.get("idempotency_key") or None,
            int(rules) if (rules := fields.get("rules_version")) else None,
            fields.get("channel") or None,
            fields.get("member") == "1",
        )
    # from_ms raises OverflowError for a time no datetime holds.
    except (KeyError, ValueError, InvalidOperation, OverflowError):
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
        accepted_at=from_ms(int(accepted_ms)),
    )


def queued_user_id(entry: str) -> str:
    """Whose order a queued record is, without decoding the rest (a user's orders are
    picked out of whole `queued` hashes). The user id is the record's last field and may
    itself hold "|"."""
    return entry.split("|", 4)[-1]


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


@dataclass(frozen=True, slots=True)
class NewClaim:
    """A claimed coupon not yet (or just) stored in Postgres."""

    id: str
    coupon_id: int
    user_id: str
    claimed_at: datetime
    valid_until: datetime
    idempotency_key: str | None


def parse_claim(fields: dict[str, str]) -> NewClaim | None:
    """A claim stream entry, or None if it is not readable."""
    try:
        return NewClaim(
            id=fields["claim_id"],
            coupon_id=int(fields["coupon_id"]),
            user_id=fields["user_id"],
            claimed_at=from_ms(int(fields["claimed_ms"])),
            valid_until=from_ms(int(fields["valid_until_ms"])),
            idempotency_key=fields.get("idempotency_key") or None,
        )
    except (KeyError, ValueError, OverflowError):
        return None


def parse_queued_claim(claim_id: str, coupon_id: int, value: str) -> NewClaim | None:
    """A claim's queued record, or None if it is not readable."""
    try:
        valid_until_ms, claimed_ms, user_id = value.split("|", 2)
        return NewClaim(
            id=claim_id,
            coupon_id=coupon_id,
            user_id=user_id,
            claimed_at=from_ms(int(claimed_ms)),
            valid_until=from_ms(int(valid_until_ms)),
            idempotency_key=None,
        )
    except (ValueError, OverflowError):
        return None


class NewPlace(NamedTuple):
    """A waiting room's place not yet (or just) stored in Postgres. Its id, for the
    writer's bookkeeping (the `queued` mark it clears), is the user's: one place each."""

    id: str  # the user id
    event_id: int
    score: int
    joined_at: datetime


def parse_place(fields: dict[str, str]) -> NewPlace | None:
    """A joins stream entry, or None if it is not readable."""
    try:
        return NewPlace(
            fields["user_id"],
            int(fields["event_id"]),
            int(fields["score"]),
            from_ms(int(fields["joined_ms"])),
        )
    except (KeyError, ValueError, OverflowError):
        return None


def parse_queued_place(user_id: str, event_id: int, value: str) -> NewPlace | None:
    """A place's queued record, or None if it is not readable."""
    try:
        score, joined_ms = value.split("|", 1)
        return NewPlace(user_id, event_id, int(score), from_ms(int(joined_ms)))
    except (ValueError, OverflowError):
        return None


class NewDraw(NamedTuple):
    """A lottery draw not yet (or just) stored in Postgres; `prize_id` None: no win."""

    id: str  # the draw id
    lottery_id: int
    user_id: str
    day: date
    prize_id: int | None
    drawn_at: datetime


def parse_draw(fields: dict[str, str]) -> NewDraw | None:
    """A draws stream entry, or None if it is not readable."""
    try:
        prize = fields["prize_id"]
        return NewDraw(
            fields["draw_id"],
            int(fields["lottery_id"]),
            fields["user_id"],
            date.fromisoformat(fields["day"]),
            int(prize) if prize else None,
            from_ms(int(fields["drawn_ms"])),
        )
    except (KeyError, ValueError, OverflowError):
        return None


def parse_queued_draw(draw_id: str, lottery_id: int, value: str) -> NewDraw | None:
    """A draw's queued record, or None if it is not readable."""
    try:
        prize, day, drawn_ms, user_id = value.split("|", 3)
        return NewDraw(
            draw_id,
            lottery_id,
            user_id,
            date.fromisoformat(day),
            int(prize) if prize else None,
            from_ms(int(drawn_ms)),
        )
    except (ValueError, OverflowError):
        return None
