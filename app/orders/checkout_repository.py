"""The orders domain's SQL for regular (checkout) orders: inserting one with its lines,
once per Idempotency-Key, and finding it again by that key."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.orders.models import Order, OrderKind


@dataclass(frozen=True, slots=True)
class NewRegularOrder:
    id: str
    user_id: str
    quantity: int
    amount: Decimal
    discount: Decimal
    coupon_id: str | None
    idempotency_key: str | None
    campaign_id: int | None = None
    rules_version: int | None = None
    channel: str | None = None
    promotion_id: int | None = None
    promotion_day: date | None = None
    member: bool = False


@dataclass(frozen=True, slots=True)
class NewOrderLine:
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    eligible: bool


# ON CONFLICT on the checkout's Idempotency-Key: of two requests with one key, the second
# waits for the first to commit and then inserts nothing (the caller returns the first).
_INSERT_REGULAR_ORDER = text(
    """
    INSERT INTO orders (id, kind, user_id, quantity, amount, discount, coupon_id, status,
                        idempotency_key, accepted_at, payment_deadline, campaign_id,
                        rules_version, channel, promotion_id, promotion_day, member)
    VALUES (:id, 'regular', :user_id, :quantity, :amount, :discount, :coupon_id,
            'pending_payment', :idem, now(), now() + make_interval(secs => :timeout_seconds),
            :campaign_id, :rules_version, :channel, :promotion_id, :promotion_day, :member)
    ON CONFLICT (user_id, idempotency_key)
        WHERE kind = 'regular' AND idempotency_key IS NOT NULL
        DO NOTHING
    RETURNING id
    """
)


async def insert_regular_order(
    session: AsyncSession,
    order: NewRegularOrder,
    lines: Sequence[NewOrderLine],
    *,
    payment_timeout_seconds: int,
) -> bool:
    """Store a checkout's order and its lines; False if the user's Idempotency-Key was
    used before (nothing is stored then)."""
    inserted = await session.scalar(
        _INSERT_REGULAR_ORDER,
        {
            "id": order.id,
            "user_id": order.user_id,
            "quantity": order.quantity,
            "amount": order.amount,
            "discount": order.discount,
            "coupon_id": order.coupon_id,
            "idem": order.idempotency_key,
            "timeout_seconds": float(payment_timeout_seconds),
            "campaign_id": order.campaign_id,
            "rules_version": order.rules_version,
            "channel": order.channel,
            "promotion_id": order.promotion_id,
            "promotion_day": order.promotion_day,
            "member": order.member,
        },
    )
    if inserted is None:
        return False
    await session.execute(
        text(
            """
            INSERT INTO order_lines (order_id, sku, quantity, unit_price, amount, eligible)
            SELECT :order_id, * FROM unnest(
                CAST(:skus AS text[]), CAST(:quantities AS integer[]),
                CAST(:unit_prices AS numeric[]), CAST(:amounts AS numeric[]),
                CAST(:eligible AS boolean[])
            )
            """
        ),
        {
            "order_id": order.id,
            "skus": [line.sku for line in lines],
            "quantities": [line.quantity for line in lines],
            "unit_prices": [line.unit_price for line in lines],
            "amounts": [line.amount for line in lines],
            "eligible": [line.eligible for line in lines],
        },
    )
    return True


async def regular_order_by_key(
    session: AsyncSession, *, user_id: str, idempotency_key: str
) -> Order | None:
    return await session.scalar(
        select(Order)
        .where(
            Order.kind == OrderKind.REGULAR.value,
            Order.user_id == user_id,
            Order.idempotency_key == idempotency_key,
        )
        .execution_options(populate_existing=True)
    )
