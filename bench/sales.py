"""Sales for the bench, opened the way the admin endpoint opens them (create, commit,
publish to Redis), through the app's own service functions."""

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from app.access import queue as queues
from app.auth import User
from app.campaigns import service as campaigns
from app.campaigns.schemas import CampaignCreate
from app.container import Container
from app.db import commit
from app.events import service as events
from app.events.access import OpenAccess, QueueAccess
from app.events.schemas import EventCreate, EventItemCreate
from app.ids import MAX_INT
from app.lottery import service as lotteries
from app.lottery.schemas import LotteryCreate, PrizeCreate
from app.planning import service as planning
from app.store.queue import RANDOM_BITS
from app.store.queue_keys import QueueKeys

UNIT_PRICE = Decimal("1999.00")
# The order writer stores one place a join (from the queue's joins stream); the bench's
# crowd of waiting users is stored in one go.
_HOLD_PLACES = text(
    """
    INSERT INTO queue_places (event_id, user_id, score)
    SELECT :event_id, user_id, score
    FROM unnest(CAST(:users AS text[]), CAST(:scores AS bigint[])) AS held(user_id, score)
    """
)


async def open_sale(
    services: Container,
    *,
    sku: str,
    stock: int,
    per_user_limit: int,
    campaign_id: int | None = None,
    queue: bool = False,
    starts_in: timedelta = timedelta(minutes=-1),
    admit_per_second: int = 1000,
    member_price: Decimal | None = None,
    member_reserved: int = 0,
) -> int:
    """A one-item sale, live unless `starts_in` is ahead (`queue`: entered through a
    waiting room open since before the start, so each purchase needs its pass); returns
    the item id."""
    now = datetime.now(UTC)
    access = (
        QueueAccess(
            mode="queue",
            opens_at=now - timedelta(minutes=2),
            admit_per_second=admit_per_second,
            pass_seconds=6 * 3600,
        )
        if queue
        else OpenAccess()
    )
    data = EventCreate(
        access=access,
        campaign_id=campaign_id,
        name=f"bench {sku}",
        starts_at=now + starts_in,
        ends_at=now + timedelta(hours=6),
        items=[
            EventItemCreate(
                sku=sku,
                name=sku,
                list_price=Decimal("2999.00"),
                seckill_price=UNIT_PRICE,
                stock=stock,
                per_user_limit=per_user_limit,
                member_price=member_price,
                member_reserved=member_reserved,
            )
        ],
    )
    async with services.sessionmaker() as session:
        event = await events.create_event(session=session, services=services, data=data)
        await commit(session)  # and load the sale into Redis, as the admin endpoint does
    return event.items[0].id


async def hold_places(services: Container, *, event_id: int, users: Sequence[str]) -> None:
    """Give each of `users` a place in the event's waiting room, as joins before the start
    would have (a secret random score each), and load the queue into Redis as the app
    loads one. Joining each through the API would take a request per user; this is one
    statement. Call it before any process has loaded the queue: a queue in Redis already
    is kept as it is."""
    scores = [secrets.randbits(RANDOM_BITS) for _ in users]
    async with services.sessionmaker() as session:
        await session.execute(
            _HOLD_PLACES, {"event_id": event_id, "users": list(users), "scores": scores}
        )
        await commit(session)
        event = await events.get_event_row(session=session, event_id=event_id)
        await queues.publish_queues(session=session, services=services, queue_events=[event])
    held = await services.redis.zcard(
        QueueKeys(services.settings.redis_key_prefix, event_id).places
    )
    if held != len(users):
        raise RuntimeError(f"queue of event {event_id}: {held} places in Redis, not {len(users)}")


async def event_of(services: Container, item_id: int) -> int:
    """The event an item belongs to."""
    async with services.sessionmaker() as session:
        item = await events.get_item_row(session=session, item_id=item_id)
        return item.event_id


async def open_campaign_sale(
    services: Container, *, sku: str, stock: int, per_user_limit: int
) -> int:
    """open_sale() as the one slot of a campaign with channels, approved by two operators;
    returns the item id."""
    now = datetime.now(UTC)
    planner = User(id="bench-planner", is_admin=True)
    data = CampaignCreate.model_validate(
        {
            "name": f"bench {sku}",
            "phases": {
                "peak": {
                    "starts_at": now - timedelta(minutes=2),
                    "ends_at": now + timedelta(hours=7),
                }
            },
            "rules": "Bench rules.",
            "channels": [{"code": "app", "cost": "100.00"}, {"code": "web", "cost": "50.00"}],
        }
    )
    async with services.sessionmaker() as session:
        campaign = await campaigns.create_campaign(session=session, data=data, actor=planner)
        await commit(session)
    item_id = await open_sale(
        services, sku=sku, stock=stock, per_user_limit=per_user_limit, campaign_id=campaign.id
    )
    async with services.sessionmaker() as session:
        await campaigns.submit(session=session, campaign_id=campaign.id, actor=planner, now=now)
        for group in services.settings.campaign_approver_groups:
            approver = User(id=f"bench-{group}", is_admin=True, groups=frozenset({group}))
            await planning.approve(
                session=session, services=services, campaign_id=campaign.id, actor=approver
            )
        await commit(session)
    return item_id


async def open_lottery(services: Container) -> int:
    """A live lottery whose draws never run out (draws a day and stock at their maxima):
    half of the draws win its one prize, half win nothing; returns its id."""
    now = datetime.now(UTC)
    async with services.sessionmaker() as session:
        created = await lotteries.create_lottery(
            session=session,
            services=services,
            data=LotteryCreate(
                name="Bench lottery",
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(hours=12),
                draws_per_user_per_day=MAX_INT,
                no_prize_weight=1,
                prizes=[PrizeCreate(name="Mug", kind="item", quantity=MAX_INT, weight=1)],
            ),
        )
        await commit(session)
    return created.id
