"""Orders: reads (a queued order lives in Redis until the writer stores it in Postgres)
and the lifecycle's rules. Never commits: the request's session owns the transaction
(app/db.py); a cancelled order's stock goes back (app/orders/release.py) after its commit,
through the session's after-commit hook.

    queued -> pending_payment -> paid -> refunded
                      |          |
                      |          +-> shipped   (an operator, app/orders/shipping.py)
                      |
                      +-> cancelled   (by the owner, an operator, or the payment timeout)
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.container import Container
from app.db import after_commit
from app.errors import ValidationFailed
from app.metrics import order_transitions
from app.moments import utc_now
from app.orders import repository
from app.orders.errors import OrderNotFound, OrderStillQueued, WrongOrderState
from app.orders.models import Order, OrderStatus, TransitionCause
from app.orders.release import return_stock_or_defer
from app.orders.schemas import OrderRead
from app.redis import as_text
from app.store.keys import ItemKeys
from app.store.order_ids import is_regular_order_id, item_of
from app.store.records import QueuedOrder, parse_queued, queued_user_id

logger = logging.getLogger(__name__)


def queued_read(queued: QueuedOrder, timeout_seconds: int) -> OrderRead:
    """A queued order as the API shows it, with the deadline it would get if stored now
    (the window opens when the order is stored, so the final one is never earlier)."""
    return OrderRead(
        id=queued.id,
        user_id=queued.user_id,
        event_id=queued.event_id,
        item_id=queued.item_id,
        quantity=queued.quantity,
        unit_price=queued.unit_price,
        amount=queued.unit_price * queued.quantity,
        status=OrderStatus.QUEUED,
        accepted_at=queued.accepted_at,
        payment_deadline=max(queued.accepted_at, utc_now()) + timedelta(seconds=timeout_seconds),
    )


async def find_queued(*, services: Container, order_id: str) -> QueuedOrder | None:
    """The order if it is accepted but not yet in Postgres (its record in Redis)."""
    item_id = item_of(order_id)
    if item_id is None:
        return None
    entry = as_text(
        await services.redis.hget(
            ItemKeys(services.settings.redis_key_prefix, item_id).queued, order_id
        )
    )
    return parse_queued(order_id, item_id, entry) if entry is not None else None


async def get_order(
    *, session: AsyncSession, services: Container, user: User, order_id: str
) -> OrderRead:
    if item_of(order_id) is None and not is_regular_order_id(order_id):
        raise OrderNotFound(f"No order {order_id!r}.")
    # Redis first: the writer removes the queued entry only after its commit, so an order
    # missing here is either in Postgres already or does not exist. A regular order is
    # never queued.
    queued = await find_queued(services=services, order_id=order_id)
    if queued is not None:
        found = queued_read(queued, services.settings.payment_timeout_seconds)
    else:
        row = await repository.get_order(session, order_id)
        if row is None:
            raise OrderNotFound(f"No order {order_id!r}.")
        found = OrderRead.model_validate(row)
    if found.user_id != user.id and not user.is_admin:
        # Someone else's order is indistinguishable from no order.
        raise OrderNotFound(f"No order {order_id!r}.")
    return found


async def queued_orders_of(*, services: Container, user_id: str) -> list[QueuedOrder]:
    """The user's orders accepted but not yet in Postgres, newest first: the `queued`
    hashes are small (the writer drains them within moments), so reading them all is
    cheap."""
    prefix = services.settings.redis_key_prefix
    item_ids = sorted(int(i) for i in await services.redis.smembers(services.keys.items))
    async with services.redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            pipe.hgetall(ItemKeys(prefix, item_id).queued)
        hashes = await pipe.execute()
    found = [
        parse_queued(str(order_id), item_id, str(entry))
        for item_id, entries in zip(item_ids, hashes, strict=True)
        for order_id, entry in (entries or {}).items()
        if queued_user_id(str(entry)) == user_id
    ]
    return sorted(found, key=lambda o: o.id, reverse=True)


async def list_orders(
    *, session: AsyncSession, services: Container, user: User, limit: int, offset: int
) -> list[OrderRead]:
    """The user's orders, newest first, those still queued included (they are the newest:
    accepted a moment ago, so they lead the first page)."""
    try:
        # Redis first: the writer deletes a queued entry only after its commit, so an
        # order moving meanwhile is found in Postgres too, and shown once.
        queued = await queued_orders_of(services=services, user_id=user.id)
    except RedisError:
        logger.warning("queued orders unavailable: Redis unreachable", exc_info=True)
        queued = []
    stored = await repository.stored_order_ids(session, [o.id for o in queued])
    waiting = [o for o in queued if o.id not in stored]
    timeout = services.settings.payment_timeout_seconds
    page = [queued_read(o, timeout) for o in waiting[offset : offset + limit]]
    rows = await repository.list_user_orders(
        session,
        user_id=user.id,
        limit=limit - len(page),
        offset=max(offset - len(waiting), 0),
    )
    page += [OrderRead.model_validate(r) for r in rows]
    return sorted(page, key=lambda o: o.id, reverse=True)


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[OrderRead]
    next_cursor: str | None


async def list_all_orders(
    *,
    session: AsyncSession,
    event_id: int | None,
    item_id: int | None,
    user_id: str | None,
    status: OrderStatus | None,
    cursor: str | None,
    limit: int,
) -> OrderPage:
    """Stored orders for operators; `queued` matches nothing (queued orders are not
    stored yet)."""
    if cursor is not None and item_of(cursor) is None and not is_regular_order_id(cursor):
        raise ValidationFailed(f"cursor {cursor!r} is not one this endpoint gave.", field="cursor")
    if status is OrderStatus.QUEUED:
        return OrderPage(orders=[], next_cursor=None)
    rows = await repository.list_orders_filtered(
        session,
        event_id=event_id,
        item_id=item_id,
        user_id=user_id,
        status=None if status is None else status.value,
        before_id=cursor,
        limit=limit + 1,
    )
    page = [OrderRead.model_validate(r) for r in rows[:limit]]
    more = len(rows) > limit
    return OrderPage(orders=page, next_cursor=page[-1].id if more and page else None)


# -- the lifecycle --------------------------------------------------------------------

# Each status is reached from exactly one other, so every change is one conditional
# UPDATE on that status, and of two racing changes exactly one wins.
SOURCE_STATUS = {
    OrderStatus.PAID: OrderStatus.PENDING_PAYMENT,
    OrderStatus.CANCELLED: OrderStatus.PENDING_PAYMENT,
    OrderStatus.REFUNDED: OrderStatus.PAID,
    # A shipped order is not refunded directly (its goods are with the buyer): it comes
    # back through a return, which refunds it once the goods are back.
    OrderStatus.SHIPPED: OrderStatus.PAID,
}
ACTION = {
    OrderStatus.PAID: "paid",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.REFUNDED: "refunded",
    OrderStatus.SHIPPED: "shipped",
}


def _visible_to(user: User, owner_id: str, *, operator: bool) -> bool:
    return owner_id == user.id or (operator and user.is_admin)


async def find_stored_order(
    *, session: AsyncSession, services: Container, user: User, order_id: str, operator: bool
) -> Order:
    """The stored order `user` may act on: their own, or any if `operator` and the user is
    an admin. Raises OrderStillQueued while it is accepted but not stored yet (the client
    retries), OrderNotFound if it does not exist or is someone else's."""
    if item_of(order_id) is None and not is_regular_order_id(order_id):
        raise OrderNotFound(f"No order {order_id!r}.")
    row = await repository.get_order(session, order_id)
    if row is None:
        queued = await find_queued(services=services, order_id=order_id)
        if queued is not None:
            if not _visible_to(user, queued.user_id, operator=operator):
                raise OrderNotFound(f"No order {order_id!r}.")
            raise OrderStillQueued(order_id)
        # The writer may have stored it (and dropped the queued entry) since we looked.
        row = await repository.get_order(session, order_id)
    if row is None or not _visible_to(user, row.user_id, operator=operator):
        raise OrderNotFound(f"No order {order_id!r}.")
    return row


async def end_read(session: AsyncSession, order: Order) -> None:
    """End a transaction that has only read, so no connection is held while a slow
    outside call (the payment gateway) runs; `order` stays readable, detached."""
    session.expunge(order)
    await session.rollback()


async def reload_order(*, session: AsyncSession, order_id: str) -> Order:
    row = await repository.get_order(session, order_id)
    assert row is not None, "a stored order is never deleted"
    return row


def ensure_status(order: Order, to_status: OrderStatus) -> None:
    """Refuse early (before charging, refunding...) a change the status cannot take."""
    source = SOURCE_STATUS[to_status]
    if order.status != source:
        raise WrongOrderState(order.id, order.status, ACTION[to_status], source.value)


async def move(
    *,
    session: AsyncSession,
    order: Order,
    to_status: OrderStatus,
    cause: TransitionCause,
    payment_reference: str | None = None,
    shipment: repository.Shipment | None = None,
    from_status: OrderStatus | None = None,
) -> bool:
    """Change the order's status if it is still in the one status `to_status` comes from
    (or in `from_status`: a return refunds a paid or a shipped order); False if another
    change got there first (nothing is written then)."""
    moved = await repository.move_orders(
        session,
        order_ids=[order.id],
        from_status=from_status or SOURCE_STATUS[to_status],
        to_status=to_status,
        cause=cause,
        payment_reference=payment_reference,
        shipment=shipment,
    )
    if moved:
        order_transitions.labels(to_status.value, cause.value).inc()
    return bool(moved)


async def move_or_refuse(
    *,
    session: AsyncSession,
    order: Order,
    to_status: OrderStatus,
    cause: TransitionCause,
    payment_reference: str | None = None,
    from_status: OrderStatus | None = None,
) -> Order:
    """move(), raising WrongOrderState (409 invalid_state) for the loser of a race; returns
    the order as changed."""
    source = from_status or SOURCE_STATUS[to_status]
    if not await move(
        session=session,
        order=order,
        to_status=to_status,
        cause=cause,
        payment_reference=payment_reference,
        from_status=source,
    ):
        current = await reload_order(session=session, order_id=order.id)
        raise WrongOrderState(order.id, current.status, ACTION[to_status], source.value)
    return await reload_order(session=session, order_id=order.id)


async def cancel(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    order_id: str,
    cause: TransitionCause,
) -> Order:
    """Cancel a pending_payment order (the owner's, or any for an operator); once the
    change commits, its stock goes back (app/orders/release.py)."""
    order = await find_stored_order(
        session=session,
        services=services,
        user=user,
        order_id=order_id,
        operator=cause is TransitionCause.OPERATOR_CANCEL,
    )
    ensure_status(order, OrderStatus.CANCELLED)
    cancelled = await move_or_refuse(
        session=session, order=order, to_status=OrderStatus.CANCELLED, cause=cause
    )
    if cause is TransitionCause.OPERATOR_CANCEL:
        await audit_log.record(
            session=session,
            actor=user,
            action="order.cancel",
            target=f"order:{order.id}",
            event_id=order.event_id,
            before={"status": order.status},
            after={"status": cancelled.status},
        )
    give_back_after_commit(session=session, services=services, order=cancelled)
    return cancelled


async def mark_goods_returned(*, session: AsyncSession, order_id: str) -> None:
    """The buyer sent the order's goods back (an approved return): once it is refunded, its
    units go back on hand, never on sale (app/orders/release.py)."""
    await repository.mark_goods_returned(session, order_id)


def give_back_after_commit(*, session: AsyncSession, services: Container, order: Order) -> None:
    """Once the cancellation or refund commits, give the order's units back; if that
    fails then, the change stands and the worker's sweep returns them."""
    after_commit(session, partial(return_stock_or_defer, services=services, order_ids=[order.id]))
