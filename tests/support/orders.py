"""Accepting many orders quickly, straight through the purchase service (no HTTP)."""

import asyncio

from sqlalchemy import func, select

from app.auth import User
from app.container import Container
from app.inventory.models import StockMovement
from app.orders.models import Order
from app.seckill.service import purchase


async def accept_orders(
    services: Container, item_id: int, count: int, *, first_user: int = 0
) -> set[str]:
    """`count` one-unit orders by distinct users; returns their order ids."""
    accepted = await asyncio.gather(
        *(
            purchase(
                services=services,
                item_id=item_id,
                user=User(id=f"u{n}"),
                quantity=1,
                idempotency_key=None,
            )
            for n in range(first_user, first_user + count)
        )
    )
    return {a.order_id for a in accepted}


async def stored_order_ids(services: Container) -> list[str]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(Order.id)))


async def sold_ledger_rows(services: Container) -> int:
    async with services.sessionmaker() as session:
        count = await session.scalar(select(func.count()).where(StockMovement.reason == "sold"))
    return int(count or 0)


async def dead_letters(services: Container) -> list[dict[str, str]]:
    """The dead-letter stream's entries, oldest first."""
    entries = await services.redis.xrange(services.keys.dead_orders) or []
    return [{str(k): str(v) for k, v in (fields or {}).items()} for _id, fields in entries]
