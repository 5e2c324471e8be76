"""Sales for the bench, opened the way the admin endpoint opens them (create, commit,
publish to Redis), through the app's own service functions."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.container import Container
from app.db import commit
from app.events import service as events
from app.events.schemas import EventCreate, EventItemCreate

UNIT_PRICE = Decimal("1999.00")


async def open_sale(services: Container, *, sku: str, stock: int, per_user_limit: int) -> int:
    """A live one-item sale; returns the item id."""
    now = datetime.now(UTC)
    data = EventCreate(
        name=f"bench {sku}",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=6),
        items=[
            EventItemCreate(
                sku=sku,
                name=sku,
                list_price=Decimal("2999.00"),
                seckill_price=UNIT_PRICE,
                stock=stock,
                per_user_limit=per_user_limit,
            )
        ],
    )
    async with services.sessionmaker() as session:
        event = await events.create_event(session=session, services=services, data=data)
        await commit(session)  # and load the sale into Redis, as the admin endpoint does
    return event.items[0].id
