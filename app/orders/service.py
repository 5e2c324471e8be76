"""Orders: reads (a queued order lives in Redis until the writer stores it in Postgres)
and the lifecycle's rules. Never commits: the caller owns the transaction, and gives the
stock of a cancelled order back (app/orders/release.py) only after its commit.

    queued -> pending_payment -> paid -> refunded
                      |
                      +-> cancelled   (by the owner, an operator, or the payment timeout)
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
from app.metrics import order_transitions
from app.orders import repository
from app.orders.errors import OrderNotFound, OrderStillQueued, WrongOrderState
from app.orders.models import Order, OrderStatus, TransitionCause
from app.orders.schemas import OrderRead
from app.redis import as_text
from app.seckill.keys import ItemKeys
from app.seckill.order_ids import item_of
from app.state import Services


def parse_queued(order_id: str, item_id: int, entry: str, timeout_seconds: int) -> OrderRead:
    quantity, unit_price, event_id, accepted_ms, user_id = entry.split("|", 4)
    accepted_at = datetime.fromtimestamp(int(accepted_ms) / 1000, UTC)
    price = Decimal(unit_price)
    return OrderRead(
        id=order_id,
        user_id=user_id,
        event_id=int(event_id),
        item_id=item_id,
        quantity=int(quantity),
        unit_price=price,
        amount=price * int(quantity),
        status=OrderStatus.QUEUED,
        accepted_at=accepted_at,
        payment_deadline=accepted_at + timedelta(seconds=timeout_seconds),
    )


async def get_order(
    *, session: AsyncSession, services: Services, user: User, order_id: str
) -> OrderRead:
    item_id = item_of(order_id)
    if item_id is None:
        raise OrderNotFound(f"No order {order_id!r}.")
    # Redis first: the writer removes the queued entry only after its commit, so an order
    # missing here is either in Postgres already or does not exist.
    entry = as_text(
        await services.redis.hget(
            ItemKeys(services.settings.redis_key_prefix, item_id).queued, order_id
        )
    )
    if entry is not None:
        found = parse_queued(order_id, item_id, entry, services.settings.payment_timeout_seconds)
    else:
        row = await repository.get_order(session, order_id)
        if row is None:
            raise OrderNotFound(f"No order {order_id!r}.")
        found = OrderRead.model_validate(row)
    if found.user_id != user.id and not user.is_admin:
        # Someone else's order is indistinguishable from no order.
        raise OrderNotFound(f"No order {order_id!r}.")
    return found


async def list_orders(
    *, session: AsyncSession, user: User, limit: int, offset: int
) -> list[OrderRead]:
    rows = await repository.list_user_orders(session, user_id=user.id, limit=limit, offset=offset)
    return [OrderRead.model_validate(r) for r in rows]


# -- the lifecycle --------------------------------------------------------------------

# Each status is reached from exactly one other, so every change is one conditional
# UPDATE on that status, and of two racing changes exactly one wins.
SOURCE_STATUS = {
    OrderStatus.PAID: OrderStatus.PENDING_PAYMENT,
    OrderStatus.CANCELLED: OrderStatus.PENDING_PAYMENT,
    OrderStatus.REFUNDED: OrderStatus.PAID,
}
ACTION = {
    OrderStatus.PAID: "paid",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.REFUNDED: "refunded",
}


def _visible_to(user: User, owner_id: str, *, operator: bool) -> bool:
    return owner_id == user.id or (operator and user.is_admin)


async def _queued_owner(services: Services, order_id: str) -> str | None:
    item_id = item_of(order_id)
    if item_id is None:
        return None
    entry = as_text(
        await services.redis.hget(
            ItemKeys(services.settings.redis_key_prefix, item_id).queued, order_id
        )
    )
    if entry is None:
        return None
    return parse_queued(order_id, item_id, entry, services.settings.payment_timeout_seconds).user_id


async def find_stored_order(
    *, session: AsyncSession, services: Services, user: User, order_id: str, operator: bool
) -> Order:
    """The stored order `user` may act on: their own, or any if `operator` and the user is
    an admin. Raises OrderStillQueued while it is accepted but not stored yet (the client
    retries), OrderNotFound if it does not exist or is someone else's."""
    if item_of(order_id) is None:
        raise OrderNotFound(f"No order {order_id!r}.")
    row = await repository.get_order(session, order_id)
    if row is None:
        owner = await _queued_owner(services, order_id)
        if owner is not None:
            if not _visible_to(user, owner, operator=operator):
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
) -> bool:
    """Change the order's status if it is still in the one status `to_status` comes from;
    False if another change got there first (nothing is written then)."""
    moved = await repository.move_orders(
        session,
        order_ids=[order.id],
        from_status=SOURCE_STATUS[to_status],
        to_status=to_status,
        cause=cause,
        payment_reference=payment_reference,
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
) -> Order:
    """move(), raising WrongOrderState (409 invalid_state) for the loser of a race; returns
    the order as changed."""
    if not await move(
        session=session,
        order=order,
        to_status=to_status,
        cause=cause,
        payment_reference=payment_reference,
    ):
        current = await reload_order(session=session, order_id=order.id)
        raise WrongOrderState(
            order.id, current.status, ACTION[to_status], SOURCE_STATUS[to_status].value
        )
    return await reload_order(session=session, order_id=order.id)


async def cancel(
    *,
    session: AsyncSession,
    services: Services,
    user: User,
    order_id: str,
    cause: TransitionCause,
) -> Order:
    """Cancel a pending_payment order (the owner's, or any for an operator). The caller
    commits, then returns the stock (app/orders/release.py)."""
    order = await find_stored_order(
        session=session,
        services=services,
        user=user,
        order_id=order_id,
        operator=cause is TransitionCause.OPERATOR_CANCEL,
    )
    ensure_status(order, OrderStatus.CANCELLED)
    return await move_or_refuse(
        session=session, order=order, to_status=OrderStatus.CANCELLED, cause=cause
    )
