"""Every SQL statement of the orders domain."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, TextClause, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import (
    RETURNING_STATUSES,
    Order,
    OrderKind,
    OrderStatus,
    OrderTransition,
    TransitionCause,
)
from app.store.idempotency import KeyedOrder
from app.store.records import NewOrder

# Orders whose units are gone from the sale: everything but a cancellation or refund.
LIVE_STATUSES = (OrderStatus.PENDING_PAYMENT.value, OrderStatus.PAID.value)
RETURNING_STATUS_VALUES = (OrderStatus.CANCELLED.value, OrderStatus.REFUNDED.value)


# Units an order still takes from its sale: a live order's, and a cancelled or refunded
# one's until its return is booked (stock_returned_at). Only release.lua ever puts those
# back on sale, exactly once; a rebuild that counted them as back would let release.lua
# add them a second time (and lower the buyer's count twice).
_HOLDS_UNITS = or_(
    Order.status.in_(LIVE_STATUSES),
    and_(Order.status.in_(RETURNING_STATUS_VALUES), Order.stock_returned_at.is_(None)),
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
# The payment window opens when the order becomes payable, i.e. now: a writer held up
# (Postgres away, a requeued dead letter) must not leave the buyer less time to pay.
_INSERT_ORDERS = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:user_ids AS text[]), CAST(:event_ids AS bigint[]),
            CAST(:item_ids AS bigint[]), CAST(:quantities AS integer[]),
            CAST(:unit_prices AS numeric[]), CAST(:accepted_ats AS timestamptz[]),
            CAST(:idempotency_keys AS text[])
        ) AS t(id, user_id, event_id, item_id, quantity, unit_price, accepted_at, idem)
    ), inserted AS (
        INSERT INTO orders (id, user_id, event_id, item_id, quantity, unit_price, amount,
                            status, idempotency_key, accepted_at, payment_deadline)
        SELECT id, user_id, event_id, item_id, quantity, unit_price, unit_price * quantity,
               'pending_payment', idem, accepted_at,
               greatest(accepted_at, now()) + make_interval(secs => :timeout_seconds)
        FROM input
        ON CONFLICT DO NOTHING
        RETURNING id, item_id, quantity
    )
    INSERT INTO inventory_ledger (sku, item_id, order_id, reason, item_stock_delta)
    SELECT items.sku, inserted.item_id, inserted.id, 'sold', -inserted.quantity
    FROM inserted JOIN event_items AS items ON items.id = inserted.item_id
    RETURNING order_id
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
            "timeout_seconds": float(payment_timeout_seconds),
        },
    )
    inserted = set(result.scalars().all())
    skipped = [o for o in orders if o.id not in inserted]
    stored_before = await stored_order_ids(session, [o.id for o in skipped])
    return Inserted(new=len(inserted), key_reused=[o for o in skipped if o.id not in stored_before])


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

# The column stamped with the time of each status change.
_STAMPED = {
    OrderStatus.PAID: "paid_at",
    OrderStatus.CANCELLED: "cancelled_at",
    OrderStatus.REFUNDED: "refunded_at",
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
                payment_reference = coalesce(:reference, payment_reference)
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
) -> list[str]:
    """Move the orders still in `from_status` to `to_status`, recording each transition;
    returns the ids that moved (the others were not in `from_status`)."""
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
        },
    )
    return list(rows.all())


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


# -- the lifecycle: giving stock back -----------------------------------------------


@dataclass(frozen=True, slots=True)
class StockReturn:
    """A cancelled or refunded order whose units are not back yet."""

    order_id: str
    user_id: str
    item_id: int | None  # None: a regular order (its units go back on hand, line by line)
    quantity: int
    # Has the item's sale not ended yet (Postgres's clock)? Only consulted when the sale
    # is not in Redis: release.lua decides everything else (app/orders/release.py).
    sale_open: bool


# A regular order (no item) always goes back on hand: it never came from a sale.
_LOCK_RETURNS = f"""
    SELECT o.id, o.user_id, o.item_id, o.quantity,
           o.item_id IS NOT NULL AND now() < e.ends_at AS sale_open
    FROM orders AS o
    LEFT JOIN event_items AS i ON i.id = o.item_id
    LEFT JOIN events AS e ON e.id = i.event_id
    WHERE o.status IN ({RETURNING_STATUSES}) AND o.stock_returned_at IS NULL
      AND (CAST(:ids AS text[]) IS NULL OR o.id = ANY(CAST(:ids AS text[])))
    ORDER BY o.id
    LIMIT :limit
    FOR UPDATE OF o
"""


def _stock_returns(rows: Iterable[Row[Any]]) -> list[StockReturn]:
    return [
        StockReturn(
            order_id=row.id,
            user_id=row.user_id,
            item_id=row.item_id,
            quantity=row.quantity,
            sale_open=bool(row.sale_open),
        )
        for row in rows
    ]


# The sweep skips orders another process holds; a request returning its own orders waits
# for them instead. The losers of a status race hold the row until they roll back (their
# conditional UPDATE locked it to re-check it), and skipping would leave the winner's
# units to the next sweep. Waiting is safe: the lock's holder either returns the units
# (the re-checked `stock_returned_at IS NULL` then excludes the row) or changes nothing.
_LOCK_RETURNS_SKIPPING = text(_LOCK_RETURNS + " SKIP LOCKED")
_LOCK_RETURNS_WAITING = text(_LOCK_RETURNS)


async def lock_stock_returns(
    session: AsyncSession, *, order_ids: Sequence[str] | None, limit: int
) -> list[StockReturn]:
    """Cancelled or refunded orders whose units are not back yet (these, or any when
    `order_ids` is None), locked for this transaction. With no ids (the sweep), an order
    another process holds is skipped: that process finishes it, or its crash unlocks it;
    named orders are waited for."""
    rows = await session.execute(
        _LOCK_RETURNS_SKIPPING if order_ids is None else _LOCK_RETURNS_WAITING,
        {"ids": None if order_ids is None else list(order_ids), "limit": limit},
    )
    return _stock_returns(rows)


# The ledger rows are written with ON CONFLICT DO NOTHING on (order_id, sku, reason): a retry
# after a crash between the Redis release and this commit books nothing twice.
_RECORD_RELEASED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger (sku, item_id, order_id, reason, item_stock_delta)
        SELECT i.sku, o.item_id, o.id, 'released', o.quantity
        FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
        ORDER BY o.id
        ON CONFLICT (order_id, sku, reason) WHERE order_id IS NOT NULL DO NOTHING
        RETURNING order_id
    )
    UPDATE orders SET stock_returned_at = now()
    WHERE id = ANY(CAST(:ids AS text[])) AND stock_returned_at IS NULL
    RETURNING id
    """
)

# Back on hand: the ledger row and the SKU's on_hand move together, and on_hand only for
# rows inserted now. item_stock_delta stays 0: the units never re-enter the sale's stock,
# so sum(item_stock_delta) of the item still equals its Redis stock.
# The tail both restocks share: on_hand raised by what was booked now, orders marked returned.
_RESTOCK_BOOKED = """
        ON CONFLICT (order_id, sku, reason) WHERE order_id IS NOT NULL DO NOTHING
        RETURNING sku, on_hand_delta
    ), per_sku AS (
        SELECT sku, sum(on_hand_delta) AS units FROM booked GROUP BY sku
    ), restocked AS (
        UPDATE skus SET on_hand = skus.on_hand + per_sku.units, updated_at = now()
        FROM per_sku WHERE skus.sku = per_sku.sku
        RETURNING skus.sku
    )
    UPDATE orders SET stock_returned_at = now()
    WHERE id = ANY(CAST(:ids AS text[])) AND stock_returned_at IS NULL
    RETURNING id
    """

_RECORD_RESTOCKED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger
            (sku, item_id, order_id, reason, on_hand_delta, item_stock_delta)
        SELECT i.sku, o.item_id, o.id, 'restocked', o.quantity, 0
        FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
        ORDER BY o.id"""
    + _RESTOCK_BOOKED
)

# Two restocks touching the same SKUs lock them in one order, so they cannot deadlock.
_LOCK_SKUS_OF_ORDERS = text(
    """
    SELECT s.sku FROM skus AS s
    WHERE s.sku IN (
        SELECT i.sku FROM orders AS o JOIN event_items AS i ON i.id = o.item_id
        WHERE o.id = ANY(CAST(:ids AS text[]))
    )
    ORDER BY s.sku
    FOR UPDATE OF s
    """
)


async def record_released(session: AsyncSession, order_ids: Sequence[str]) -> int:
    """Book `released` rows (item_stock_delta = +quantity) for orders whose units went
    back to the sale in Redis, and mark them returned; returns how many were marked."""
    if not order_ids:
        return 0
    rows = await session.scalars(_RECORD_RELEASED, {"ids": sorted(order_ids)})
    return len(rows.all())


async def record_restocked(session: AsyncSession, order_ids: Sequence[str]) -> int:
    """Book `restocked` rows (on_hand_delta = +quantity) and raise the SKUs' on_hand for
    orders whose sale had ended, and mark them returned; returns how many were marked."""
    if not order_ids:
        return 0
    ids = sorted(order_ids)
    await session.execute(_LOCK_SKUS_OF_ORDERS, {"ids": ids})
    rows = await session.scalars(_RECORD_RESTOCKED, {"ids": ids})
    return len(rows.all())


_RETURNS_DUE = text(
    f"""
    SELECT o.id, o.user_id, o.item_id, o.quantity, now() < e.ends_at AS sale_open
    FROM orders AS o
    JOIN event_items AS i ON i.id = o.item_id
    JOIN events AS e ON e.id = i.event_id
    WHERE o.status IN ({RETURNING_STATUSES}) AND o.stock_returned_at IS NULL
      AND o.item_id = ANY(CAST(:item_ids AS bigint[]))
    ORDER BY o.id
    """
)


async def stock_returns_due(session: AsyncSession, item_ids: Iterable[int]) -> list[StockReturn]:
    """Cancelled or refunded orders of these items whose units are not back yet: a plain
    read for the audit (lock_stock_returns is the one that claims them)."""
    ids = list(item_ids)
    if not ids:
        return []
    rows = await session.execute(_RETURNS_DUE, {"item_ids": ids})
    return _stock_returns(rows)


# -- regular orders (checkout) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewRegularOrder:
    id: str
    user_id: str
    quantity: int
    amount: Decimal
    discount: Decimal
    coupon_id: str | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class NewOrderLine:
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    eligible: bool


# ON CONFLICT on the checkout's Idempotency-Key: of two requests with one key, the second
# waits for the first to commit and then inserts nothing (the caller returns the first).
_INSERT_REGULAR_ORDER = text(
    """
    INSERT INTO orders (id, kind, user_id, quantity, amount, discount, coupon_id, status,
                        idempotency_key, accepted_at, payment_deadline)
    VALUES (:id, 'regular', :user_id, :quantity, :amount, :discount, :coupon_id,
            'pending_payment', :idem, now(), now() + make_interval(secs => :timeout_seconds))
    ON CONFLICT (user_id, idempotency_key)
        WHERE kind = 'regular' AND idempotency_key IS NOT NULL
        DO NOTHING
    RETURNING id
    """
)


async def insert_regular_order(
    session: AsyncSession,
    order: NewRegularOrder,
    lines: Sequence[NewOrderLine],
    *,
    payment_timeout_seconds: int,
) -> bool:
    """Store a checkout's order and its lines; False if the user's Idempotency-Key was
    used before (nothing is stored then)."""
    inserted = await session.scalar(
        _INSERT_REGULAR_ORDER,
        {
            "id": order.id,
            "user_id": order.user_id,
            "quantity": order.quantity,
            "amount": order.amount,
            "discount": order.discount,
            "coupon_id": order.coupon_id,
            "idem": order.idempotency_key,
            "timeout_seconds": float(payment_timeout_seconds),
        },
    )
    if inserted is None:
        return False
    await session.execute(
        text(
            """
            INSERT INTO order_lines (order_id, sku, quantity, unit_price, amount, eligible)
            SELECT :order_id, * FROM unnest(
                CAST(:skus AS text[]), CAST(:quantities AS integer[]),
                CAST(:unit_prices AS numeric[]), CAST(:amounts AS numeric[]),
                CAST(:eligible AS boolean[])
            )
            """
        ),
        {
            "order_id": order.id,
            "skus": [line.sku for line in lines],
            "quantities": [line.quantity for line in lines],
            "unit_prices": [line.unit_price for line in lines],
            "amounts": [line.amount for line in lines],
            "eligible": [line.eligible for line in lines],
        },
    )
    return True


async def regular_order_by_key(
    session: AsyncSession, *, user_id: str, idempotency_key: str
) -> Order | None:
    return await session.scalar(
        select(Order)
        .where(
            Order.kind == OrderKind.REGULAR.value,
            Order.user_id == user_id,
            Order.idempotency_key == idempotency_key,
        )
        .execution_options(populate_existing=True)
    )


# A regular order's units go back on hand line by line: one `restocked` row per line
# (unique per order, SKU and reason), on_hand raised only for rows inserted now.
_RECORD_LINES_RESTOCKED = text(
    """
    WITH booked AS (
        INSERT INTO inventory_ledger (sku, order_id, reason, on_hand_delta, item_stock_delta)
        SELECT l.sku, l.order_id, 'restocked', l.quantity, 0
        FROM order_lines AS l
        WHERE l.order_id = ANY(CAST(:ids AS text[]))
        ORDER BY l.order_id, l.sku"""
    + _RESTOCK_BOOKED
)


async def record_lines_restocked(session: AsyncSession, order_ids: Sequence[str]) -> int:
    """Regular orders: their lines' units back on hand, booked, orders marked returned."""
    if not order_ids:
        return 0
    ids = sorted(order_ids)
    await session.execute(
        text(
            """
            SELECT s.sku FROM skus AS s
            WHERE s.sku IN (SELECT sku FROM order_lines WHERE order_id = ANY(CAST(:ids AS text[])))
            ORDER BY s.sku
            FOR UPDATE OF s
            """
        ),
        {"ids": ids},
    )
    rows = await session.scalars(_RECORD_LINES_RESTOCKED, {"ids": ids})
    return len(rows.all())


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
