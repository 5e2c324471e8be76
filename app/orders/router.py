from typing import Annotated

from fastapi import APIRouter, Path

from app.auth import CurrentUser
from app.db import SessionDep
from app.errors import Unauthorized, problem_responses
from app.orders import service
from app.orders.errors import OrderNotFound
from app.orders.schemas import OrderRead
from app.pagination import PageDep
from app.state import ServicesDep

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])
OrderId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("", responses=problem_responses(Unauthorized))
async def list_orders(session: SessionDep, user: CurrentUser, page: PageDep) -> list[OrderRead]:
    """The caller's stored orders, newest first (a just-accepted order appears within
    moments, once the order writer has stored it)."""
    return await service.list_orders(
        session=session, user=user, limit=page.limit, offset=page.offset
    )


@router.get("/{order_id}", responses=problem_responses(Unauthorized, OrderNotFound))
async def get_order(
    order_id: OrderId, session: SessionDep, services: ServicesDep, user: CurrentUser
) -> OrderRead:
    """`queued` until the order writer stores the order, then its stored status."""
    return await service.get_order(session=session, services=services, user=user, order_id=order_id)
