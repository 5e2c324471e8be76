"""Shipping: an operator hands a paid order to a carrier (status `shipped`), and the list
of paid orders past their event's ship-by (app/moments.py, ship_by). Never commits.

Shipping an order already shipped with the same carrier and tracking number answers the
shipped order (a retry after a lost answer); with another one it is refused (409
invalid_state): a shipment is recorded once, never overwritten. A regular-checkout order
has no event, so no ship-by: it is never overdue."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.container import Container
from app.orders import service as orders
from app.orders import shipping_repository as repository
from app.orders.models import Order, OrderStatus, TransitionCause
from app.orders.repository import Shipment
from app.orders.schemas import OrderRead, OverdueShipmentRead, ShipmentCreate


def _same_shipment(order: Order, data: ShipmentCreate) -> bool:
    return (
        order.status == OrderStatus.SHIPPED.value
        and order.carrier == data.carrier
        and order.tracking_number == data.tracking_number
    )


async def ship(
    *, session: AsyncSession, services: Container, user: User, order_id: str, data: ShipmentCreate
) -> Order:
    """Mark a paid order shipped with its carrier and tracking number (operators)."""
    order = await orders.find_stored_order(
        session=session, services=services, user=user, order_id=order_id, operator=True
    )
    if _same_shipment(order, data):
        return order
    orders.ensure_status(order, OrderStatus.SHIPPED)
    if not await orders.move(
        session=session,
        order=order,
        to_status=OrderStatus.SHIPPED,
        cause=TransitionCause.SHIPMENT,
        shipment=Shipment(carrier=data.carrier, tracking_number=data.tracking_number),
    ):
        # Another change got there first: the same shipment racing is answered as one.
        current = await orders.reload_order(session=session, order_id=order.id)
        if _same_shipment(current, data):
            return current
        orders.ensure_status(current, OrderStatus.SHIPPED)
    shipped = await orders.reload_order(session=session, order_id=order.id)
    await audit_log.record(
        session=session,
        actor=user,
        action="order.ship",
        target=f"order:{order.id}",
        event_id=order.event_id,
        before={"status": OrderStatus.PAID.value},
        after={
            "status": shipped.status,
            "carrier": shipped.carrier,
            "tracking_number": shipped.tracking_number,
        },
    )
    return shipped


async def overdue(
    *, session: AsyncSession, now: datetime, limit: int, offset: int
) -> list[OverdueShipmentRead]:
    """Paid orders whose event's ship-by is past at `now`, the most overdue first."""
    rows = await repository.overdue_orders(session, now=now, limit=limit, offset=offset)
    return [
        OverdueShipmentRead.model_validate(
            {**OrderRead.model_validate(order).model_dump(), "ship_by": ship_by}
        )
        for order, ship_by in rows
    ]


async def overdue_count(*, session: AsyncSession, now: datetime, event_id: int | None) -> int:
    """How many paid orders (of one event, if given) are past their ship-by at `now`."""
    return await repository.count_overdue(session, now=now, event_id=event_id)
