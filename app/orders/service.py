"""Order reads: a queued order lives in Redis until the writer stores it in Postgres."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
from app.orders import repository
from app.orders.errors import OrderNotFound
from app.orders.models import OrderStatus
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
