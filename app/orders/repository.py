"""The orders domain's SQL for stored orders: what they hold of each sale, reading and
listing them, the order writer's inserts, and status changes. Giving stock back is
returns_repository.py, regular (checkout) orders checkout_repository.py."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, TextClause, and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import (
    RETURNING_STATUSES,
    Order,
    OrderStatus,
    OrderTransition,
    TransitionCause,
)
from app.store.idempotency import KeyedOrder
from app.store.records import NewOrder

# Orders whose units are gone from the sale: everything but a cancellation or refund.
LIVE_STATUSES = (
    OrderStatus.PENDING_PAYMENT.value,
    OrderStatus.PAID.value,
    OrderStatus.SHIPPED.value,
)
RETURNING_STATUS_VALUES = (OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value)


# Units an order still takes from its sale: a live order's, and a cancelled or refunded
# one's until its return is booked (stock_returned_at). Only release.lua ever puts those
# back on sale, exactly once; a rebuild that counted them as back would let release.lua
# add them a second time (and lower the buyer's count twice).
# Returned goods (goods_returned) went on hand, never back into the sale's Redis stock,
# so they stay taken from the sale (and from their buyer's limit) for good.
_HOLDS_UNITS = or_(
    Order.status.in_(LIVE_STATUSES),
    and_(Order.status.in_(RETURNING_STATUS_VALUES), Order.stock_returned_at.is_(None)),
    Order.goods_returned.is_(True),
)


def _holding(with_owed_returns: bool) -> ColumnElement[bool]:
    return _HOLDS_UNITS if with_owed_returns else Order.status.in_(LIVE_STATUSES)


async def units_sold_by_item(
    session: AsyncSession, item_ids: Iterable[int], *, with_owed_returns: bool = False
) -> dict[int, int]:
    """Units of each item's live stored orders; `with_owed_returns`, every unit its
    stored orders still take from the sale (see _HOLDS_UNITS), as a rebuild counts."""
    ids = list(item_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Order.item_id, func.sum(Order.quantity))
        .where(Order.item_id.in_(ids), _holding(with_owed_returns))
        .group_by(Order.item_id)
    )
    sold = {item_id: int(units) for item_id, units in rows}
    return {item_id: sold.get(item_id, 0) for item_id in ids}


async def newest_acceptance_by_item(
    session: AsyncSession, item_ids: Iterable[int]
) -> dict[int, datetime]:
    """When the newest stored order of each item was accepted (Redis's clock), whatever
    its status; items with no stored order are left out."""
    ids = list(item_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(Order.item_id, func.max(Order.accepted_at))
        .where(Order.item_id.in_(ids))
        .group_by(Order.item_id)
    )
    return {int(item_id): newest for item_id, newest in rows if item_id is not None}


async def units_bought_by_user(
    session: AsyncSession, item_id: int, *, with_owed_returns: bool = False
) -> dict[str, int]:
    """Units of each user's live stored orders of the item; `with_owed_returns`, what
    their stored orders still hold (see _HOLDS_UNITS), as a rebuild counts."""
    rows = await session.execute(
        select(Order.user_id, func.sum(Order.quantity))
        .where(Order.item_id == item_id, _holding(with_owed_returns))
        .group_by(Order.user_id)
    )
    return {user_id: int(units) for user_id, units in rows}


async def units_taken_by_members(session: AsyncSession, item_id: int) -> int:
    """Units of the item's stored member orders, whatever their status: purchase.lua's
    member_units, which never falls (a returned unit comes back as general stock, so the
    members' reserve is what it was less every unit members ever took)."""
    units = await session.scalar(
        select(func.coalesce(func.sum(Order.quantity), 0)).where(
            Order.item_id == item_id, Order.member.is_(True)
        )
    )
    return int(units or 0)


async def keyed_orders_of_item(session: AsyncSession, item_id: int) -> list[KeyedOrder]:
    """The item's stored orders that came with an Idempotency-Key, whatever their status
    (a repeat of a cancelled order still gets its first answer)."""
    rows = await session.execute(
        select(Order.user_id, Order.idempotency_key, Order.id, Order.quantity).where(
            Order.item_id == item_id, Order.idempotency_key.is_not(None)
        )
    )
    return [
        KeyedOrder(user_id=user, idempotency_key=key, order_id=order_id, quantity=quantity)
        for user, key, order_id, quantity in rows
        if key is not None
    ]


_SETTLED_ENDED_ITEMS = text(
    f"""
    SELECT i.id FROM event_items AS i JOIN events AS e ON e.id = i.event_id
    WHERE i.id = ANY(CAST(:ids AS bigint[])) AND e.ends_at < :ended_before
      AND NOT EXISTS (
        SELECT 1 FROM orders AS o
        WHERE o.item_id = i.id
          AND (o.status = '{OrderStatus.PENDING_PAYMENT.value}'
               OR (o.status IN ({RETURNING_STATUSES}) AND o.stock_returned_at IS NULL))
      )
    ORDER BY i.id
    """
)


async def settled_ended_items(
    session: AsyncSession, item_ids: Iterable[int], *, ended_before: datetime
) -> list[int]:
    """Of these items, those whose sale ended before `ended_before` and whose stored
    orders are all settled: none waits for payment, none is owed a stock return."""
    ids = sorted(item_ids)
    if not ids:
        return []
    rows = await session.scalars(_SETTLED_ENDED_ITEMS, {"ids": ids, "ended_before": ended_before})
    return list(rows.all())


async def get_order(session: AsyncSession, order_id: str) -> Order | None:
    return await session.get(Order, order_id, populate_existing=True)


async def list_user_orders(
    session: AsyncSession, *, user_id: str, limit: int, offset: int
) -> list[Order]:
    rows = await session.scalars(
        select(Order)
        .where(Order.user_id == user_id)
        .order_by(Order.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows.all())


# One statement per batch: unnest the columns, insert what is new, and write a `sold`
# ledger row for each inserted order. ON CONFLICT skips a re-delivered entry (its id is
# stored) and a second order under one Idempotency-Key (see insert_orders).
# Each order takes its event's campaign, the rules version the script read with the
# stock (the campaign's current one for an entry written before versions were stamped),
# and its channel: a code the campaign does not list is "other". (The events join is an
# outer one so that an order of no stored event still fails on its foreign key.)
# The payment window opens when the order becomes payable, i.e. now: a writer held up
# (Postgres away, a requeued dead letter) must not leave the buyer less time to pay.
# It answers one row, the count stored and the ids skipped (nearly always none): a
# returned row per order cost the writer more than decoding the orders did.
_INSERT_ORDERS = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:user_ids AS text[]), CAST(:event_ids AS bigint[]),
            CAST(:item_ids AS bigint[]), CAST(:quantities AS integer[]),
            CAST(:unit_prices AS numeric[]), CAST(:accepted_ats AS timestamptz[]),
            CAST(:idempotency_keys AS text[]), CAST(:rules_versions AS integer[]),
            CAST(:channels AS text[]), CAST(:members AS boolean[])
        ) AS t(id, user_id, event_id, item_id, quantity, unit_price, accepted_at, idem,
               rules_version, channel, member)
    ), inserted AS (
        INSERT INTO orders (id, user_id, event_id, item_id, quantity, unit_price, amount,
                            status, idempotency_key, accepted_at, payment_deadline,
                            campaign_id, rules_version, channel, member)
        SELECT input.id, input.user_id, input.event_id, input.item_id, input.quantity,
               input.unit_price, input.unit_price * input.quantity, 'pending_payment',
               input.idem, input.accepted_at,
               greatest(input.accepted_at, now()) + make_interval(secs => :timeout_seconds),
               events.campaign_id,
               CASE WHEN events.campaign_id IS NOT NULL
                    THEN coalesce(input.rules_version, campaigns.rules_version) END,
               CASE WHEN input.channel IS NULL OR events.campaign_id IS NULL
                         OR EXISTS (SELECT 1 FROM campaign_channels AS listed
                                    WHERE listed.campaign_id = events.campaign_id
                                      AND listed.code = input.channel)
                    THEN input.channel ELSE 'other' END,
               input.member
        FROM input
        LEFT JOIN events ON events.id = input.event_id
        LEFT JOIN campaigns ON campaigns.id = events.campaign_id
        ON CONFLICT DO NOTHING
        RETURNING id, item_id, quantity
    ), ledger AS (
        INSERT INTO inventory_ledger (sku, item_id, order_id, reason, item_stock_delta)
        SELECT items.sku, inserted.item_id, inserted.id, 'sold', -inserted.quantity
        FROM inserted JOIN event_items AS items ON items.id = inserted.item_id
    )
    SELECT (SELECT count(*) FROM inserted) AS new,
           ARRAY(SELECT id FROM input EXCEPT SELECT id FROM inserted) AS skipped
    """
)


@dataclass(frozen=True, slots=True)
class Inserted:
    new: int  # orders stored now (the others were stored before, or refused below)
    # Orders refused for reusing an Idempotency-Key its user's stored order of the item
    # already has: accepted after the key's Redis record was lost. They never exist;
    # their units go back (app/flows/writer.py).
    key_reused: list[NewOrder]


async def insert_orders(
    session: AsyncSession, orders: Sequence[NewOrder], *, payment_timeout_seconds: int
) -> Inserted:
    """Store new orders as `pending_payment` with their ledger rows."""
    if not orders:
        return Inserted(new=0, key_reused=[])
    result = await session.execute(
        _INSERT_ORDERS,
        {
            "ids": [o.id for o in orders],
            "user_ids": [o.user_id for o in orders],
            "event_ids": [o.event_id for o in orders],
            "item_ids": [o.item_id for o in orders],
            "quantities": [o.quantity for o in orders],
            "unit_prices": [o.unit_price for o in orders],
            "accepted_ats": [o.accepted_at for o in orders],
            "idempotency_keys": [o.idempotency_key for o in orders],
            "rules_versions": [o.rules_version for o in orders],
            "channels": [o.channel for o in orders],
            "members": [o.member for o in orders],
            "timeout_seconds": float(payment_timeout_seconds),
        },
    )
    new, skipped_ids = result.one()
    skipped = set(skipped_ids)
    stored_before = await stored_order_ids(session, skipped)
    return Inserted(
        new=int(new),
        key_reused=[o for o in orders if o.id in skipped and o.id not in stored_before],
    )


async def stored_order_ids(session: AsyncSession, order_ids: Iterable[str]) -> set[str]:
    """Which of these orders are in Postgres, whatever their status."""
    ids = list(order_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        text("SELECT id FROM orders WHERE id = ANY(CAST(:ids AS text[]))"), {"ids": ids}
    )
    return set(rows.all())


async def orders_by_idempotency_key(
    session: AsyncSession, *, item_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Stored orders of the item for these (user id, Idempotency-Key) pairs -> order id."""
    pairs = list(keys)
    if not pairs:
        return {}
    rows = await session.execute(
        text(
            """
            SELECT o.user_id, o.idempotency_key, o.id
            FROM orders AS o
            JOIN unnest(CAST(:users AS text[]), CAST(:keys AS text[])) AS k(user_id, idem)
              ON o.user_id = k.user_id AND o.idempotency_key = k.idem
            WHERE o.item_id = :item_id
            """
        ),
        {"users": [u for u, _ in pairs], "keys": [k for _, k in pairs], "item_id": item_id},
    )
    return {(user_id, key): order_id for user_id, key, order_id in rows}


# -- the lifecycle: status changes --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shipment:
    """What an order ships with (status shipped)."""

    carrier: str
    tracking_number: str


# The column stamped with the time of each status change.
_STAMPED = {
    OrderStatus.PAID: "paid_at",
    OrderStatus.CANCELLED: "cancelled_at",
    OrderStatus.REFUNDED: "refunded_at",
    OrderStatus.SHIPPED: "shipped_at",
}


def _move_statement(to_status: OrderStatus) -> TextClause:
    # One conditional UPDATE decides the race (`AND status = :from_status`): of two
    # concurrent changes of one order, the second finds the row changed and moves nothing.
    # The transition rows are written by the same statement, for the moved orders only.
    return text(
        f"""
        WITH moved AS (
            UPDATE orders
            SET status = :to_status, {_STAMPED[to_status]} = now(), updated_at = now(),
                payment_reference = coalesce(:reference, payment_reference),
                carrier = coalesce(:carrier, carrier),
                tracking_number = coalesce(:tracking_number, tracking_number)
            WHERE id = ANY(CAST(:ids AS text[])) AND status = :from_status
            RETURNING id
        )
        INSERT INTO order_transitions (order_id, from_status, to_status, cause)
        SELECT id, :from_status, :to_status, CAST(:cause AS text) FROM moved
        RETURNING order_id
        """
    )


async def move_orders(
    session: AsyncSession,
    *,
    order_ids: Sequence[str],
    from_status: OrderStatus,
    to_status: OrderStatus,
    cause: TransitionCause,
    payment_reference: str | None = None,
    shipment: Shipment | None = None,
) -> list[str]:
    """Move the orders still in `from_status` to `to_status`, recording each transition;
    returns the ids that moved (the others were not in `from_status`). A `shipment`
    (carrier, tracking number) is recorded on the moved orders."""
    if not order_ids:
        return []
    rows = await session.scalars(
        _move_statement(to_status),
        {
            "ids": list(order_ids),
            "from_status": from_status.value,
            "to_status": to_status.value,
            "cause": cause.value,
            "reference": payment_reference,
            "carrier": None if shipment is None else shipment.carrier,
            "tracking_number": None if shipment is None else shipment.tracking_number,
        },
    )
    return list(rows.all())


async def mark_goods_returned(session: AsyncSession, order_id: str) -> None:
    await session.execute(update(Order).where(Order.id == order_id).values(goods_returned=True))


async def lock_overdue_orders(session: AsyncSession, *, limit: int) -> list[str]:
    """Unpaid orders past their payment deadline, oldest first, locked for this
    transaction; rows another sweep holds are skipped, not waited for."""
    rows = await session.scalars(
        text(
            """
            SELECT id FROM orders
            WHERE status = 'pending_payment' AND payment_deadline <= now()
            ORDER BY payment_deadline
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return list(rows.all())


async def list_transitions(session: AsyncSession, order_id: str) -> list[OrderTransition]:
    rows = await session.scalars(
        select(OrderTransition)
        .where(OrderTransition.order_id == order_id)
        .order_by(OrderTransition.id)
    )
    return list(rows.all())


async def list_orders_filtered(
    session: AsyncSession,
    *,
    event_id: int | None,
    item_id: int | None,
    user_id: str | None,
    status: str | None,
    before_id: str | None,
    limit: int,
) -> list[Order]:
    """Stored orders matching every filter given, newest first (ids sort by time);
    `before_id` continues a page (keyset pagination on the id)."""
    query = select(Order)
    if event_id is not None:
        query = query.where(Order.event_id == event_id)
    if item_id is not None:
        query = query.where(Order.item_id == item_id)
    if user_id is not None:
        query = query.where(Order.user_id == user_id)
    if status is not None:
        query = query.where(Order.status == status)
    if before_id is not None:
        query = query.where(Order.id < before_id)
    rows = await session.scalars(query.order_by(Order.id.desc()).limit(limit))
    return list(rows.all())
