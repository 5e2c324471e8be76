"""Campaigns and their orders written straight to Postgres (not through the campaign
API), so a report's every figure is known by hand: `double_eleven` builds one with
orders in each phase and outside, on listed, unknown and no channels, paid, refunded,
cancelled and unpaid, and a baseline campaign a year earlier."""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.campaigns.models import Campaign, CampaignChannel, CampaignStatus
from app.orders.models import Order, OrderKind, OrderStatus

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Phases:
    """Warm-up, peak and return, a day each, from `starts_at`."""

    starts_at: datetime

    @property
    def warm_up(self) -> datetime:
        return self.starts_at

    @property
    def peak(self) -> datetime:
        return self.starts_at + DAY

    @property
    def return_(self) -> datetime:
        return self.starts_at + 2 * DAY

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + 3 * DAY


async def add_campaign(
    session: AsyncSession,
    *,
    name: str,
    phases: Phases,
    channels: dict[str, Decimal] | None = None,
    target_gmv: Decimal | None = None,
    target_orders: int | None = None,
    target_new_buyers: int | None = None,
    baseline_campaign_id: int | None = None,
    peak_only: bool = False,
) -> int:
    campaign = Campaign(
        name=name,
        status=CampaignStatus.APPROVED,
        warm_up_starts_at=None if peak_only else phases.warm_up,
        warm_up_ends_at=None if peak_only else phases.peak,
        peak_starts_at=phases.peak,
        peak_ends_at=phases.return_,
        return_starts_at=None if peak_only else phases.return_,
        return_ends_at=None if peak_only else phases.ends_at,
        rules="Spend 300, save 30.",
        target_gmv=target_gmv,
        target_orders=target_orders,
        target_new_buyers=target_new_buyers,
        baseline_campaign_id=baseline_campaign_id,
        created_by="operator",
        channels=[CampaignChannel(code=c, cost=cost) for c, cost in (channels or {}).items()],
    )
    session.add(campaign)
    await session.flush()
    return campaign.id


_ORDER_NUMBERS = itertools.count(1)  # order ids unique across builders


@dataclass
class Orders:
    """Regular orders (no item needed), numbered in the order they are added."""

    session: AsyncSession
    added: list[Order] = field(default_factory=list)

    def add(
        self,
        *,
        campaign_id: int | None,
        user_id: str,
        amount: str,
        accepted_at: datetime,
        status: OrderStatus = OrderStatus.PAID,
        channel: str | None = None,
        quantity: int = 1,
    ) -> Order:
        paid = status in (OrderStatus.PAID, OrderStatus.REFUNDED)
        order = Order(
            id=f"T{next(_ORDER_NUMBERS):06d}-{user_id}",
            kind=OrderKind.REGULAR,
            user_id=user_id,
            quantity=quantity,
            amount=Decimal(amount),
            status=status,
            campaign_id=campaign_id,
            channel=channel,
            accepted_at=accepted_at,
            payment_deadline=accepted_at + timedelta(minutes=15),
            paid_at=accepted_at + timedelta(minutes=1) if paid else None,
            refunded_at=accepted_at + HOUR if status is OrderStatus.REFUNDED else None,
            cancelled_at=accepted_at + HOUR if status is OrderStatus.CANCELLED else None,
        )
        self.session.add(order)
        self.added.append(order)
        return order


# This year's campaign (ended: the report sees it whole) and last year's.
THIS_YEAR = Phases(datetime(2026, 11, 8, tzinfo=UTC))
LAST_YEAR = Phases(datetime(2025, 11, 8, tzinfo=UTC))


@dataclass(frozen=True)
class DoubleEleven:
    campaign_id: int
    baseline_id: int
    orders: list[Order]  # this year's, in the order of the table in double_eleven()


async def double_eleven(sessionmaker: async_sessionmaker[AsyncSession]) -> DoubleEleven:
    """This year's campaign:

    | #  | user | channel | phase   | status    | units | amount |
    | 1  | u1   | app     | peak    | paid      | 2     | 200.00 | at the peak's first instant
    | 2  | u2   | app     | warm_up | paid      | 1     | 100.00 |
    | 3  | u3   | web     | peak    | paid      | 3     | 300.00 | u3 bought last year first
    | 4  | u4   | other   | return  | paid      | 1     |  50.00 | at the return's first instant
    | 5  | u5   | none    | outside | paid      | 1     |  25.00 | an hour before the warm-up
    | 6  | u6   | app     | peak    | refunded  | 1     |  80.00 |
    | 7  | u7   | web     | peak    | cancelled | 1     |  40.00 |
    | 8  | u8   | none    | peak    | unpaid    | 1     |  10.00 |
    | 9  | u9   | app     | peak    | paid      | 1     |  60.00 | u9 bought in no campaign first
    | 10 | u1   | app     | return  | paid      | 1     |  20.00 |

    Channels app (cost 100.00), web (0.00) and ads (50.00, no order); targets GMV
    1000.00, 20 orders, 5 new buyers (u1, u2, u4 and u5 are new). Last year's (the
    baseline): u3 paid 100.00 (1 unit), u20 paid 400.00 (4 units), u22 cancelled 30.00."""
    async with sessionmaker() as session, session.begin():
        baseline = await add_campaign(session, name="Double 11, 2025", phases=LAST_YEAR)
        campaign = await add_campaign(
            session,
            name="Double 11, 2026",
            phases=THIS_YEAR,
            channels={"app": Decimal("100.00"), "web": Decimal("0.00"), "ads": Decimal("50.00")},
            target_gmv=Decimal("1000.00"),
            target_orders=20,
            target_new_buyers=5,
            baseline_campaign_id=baseline,
        )
        last = Orders(session)
        last.add(campaign_id=baseline, user_id="u3", amount="100.00", accepted_at=LAST_YEAR.peak)
        last.add(
            campaign_id=baseline,
            user_id="u20",
            amount="400.00",
            quantity=4,
            accepted_at=LAST_YEAR.peak + HOUR,
        )
        last.add(
            campaign_id=baseline,
            user_id="u22",
            amount="30.00",
            status=OrderStatus.CANCELLED,
            accepted_at=LAST_YEAR.peak + 2 * HOUR,
        )
        # u9's first purchase, in no campaign.
        last.add(
            campaign_id=None, user_id="u9", amount="15.00", accepted_at=THIS_YEAR.warm_up - DAY
        )
        this = Orders(session)
        peak, ret = THIS_YEAR.peak, THIS_YEAR.return_
        rows: list[tuple[str, str | None, datetime, OrderStatus, int, str]] = [
            ("u1", "app", peak, OrderStatus.PAID, 2, "200.00"),
            ("u2", "app", THIS_YEAR.warm_up + HOUR, OrderStatus.PAID, 1, "100.00"),
            ("u3", "web", peak + HOUR, OrderStatus.PAID, 3, "300.00"),
            ("u4", "other", ret, OrderStatus.PAID, 1, "50.00"),
            ("u5", None, THIS_YEAR.warm_up - HOUR, OrderStatus.PAID, 1, "25.00"),
            ("u6", "app", peak + 2 * HOUR, OrderStatus.REFUNDED, 1, "80.00"),
            ("u7", "web", peak + 3 * HOUR, OrderStatus.CANCELLED, 1, "40.00"),
            ("u8", None, peak + 4 * HOUR, OrderStatus.PENDING_PAYMENT, 1, "10.00"),
            ("u9", "app", peak + 5 * HOUR, OrderStatus.PAID, 1, "60.00"),
            ("u1", "app", ret + HOUR, OrderStatus.PAID, 1, "20.00"),
        ]
        for user, channel, at, status, units, amount in rows:
            this.add(
                campaign_id=campaign,
                user_id=user,
                channel=channel,
                accepted_at=at,
                status=status,
                quantity=units,
                amount=amount,
            )
    return DoubleEleven(campaign_id=campaign, baseline_id=baseline, orders=this.added)
