"""The demo flash sale `seckill dev` creates on an empty database."""

from datetime import timedelta
from decimal import Decimal

from app.container import Container
from app.db import commit
from app.events import repository, service
from app.events.models import Event
from app.events.schemas import EventCreate, EventItemCreate
from app.moments import utc_now

DEMO_DURATION = timedelta(hours=2)


def demo_event_spec() -> EventCreate:
    starts_at = utc_now()
    return EventCreate(
        name="Demo flash sale: 1,000 phones at 1,999",
        starts_at=starts_at,
        ends_at=starts_at + DEMO_DURATION,
        member_early_access_seconds=0,
        items=[
            EventItemCreate(
                sku="DEMO-PHONE-128",
                name="Demo phone 128 GB",
                list_price=Decimal("2999.00"),
                seckill_price=Decimal("1999.00"),
                stock=1000,
                per_user_limit=1,
            ),
            EventItemCreate(
                sku="DEMO-EARBUDS",
                name="Demo earbuds",
                list_price=Decimal("399.00"),
                seckill_price=Decimal("199.00"),
                stock=500,
                per_user_limit=2,
            ),
        ],
    )


async def ensure_demo_event(services: Container) -> Event | None:
    """Create the demo sale unless some sale is live or upcoming; returns it if created."""
    async with services.sessionmaker() as session:
        if await repository.items_not_ended(session, now=utc_now()):
            return None
        event = await service.create_event(
            session=session, services=services, data=demo_event_spec()
        )
        await commit(session)  # and load the sale into Redis
        return event


async def first_open_item_id(services: Container) -> int | None:
    """An item of a live or upcoming sale, for the welcome message's example purchase."""
    async with services.sessionmaker() as session:
        items = await repository.items_not_ended(session, now=utc_now())
    return items[0].id if items else None
