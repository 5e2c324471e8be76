"""Regular checkout: SKUs at their regular price, at most one discount: the coupon when one
is given, else the first daily promotion the order qualifies for. Never commits.

A quote and an order are priced by the same pure function (app/coupons/pricing.py). An
order is placed in one transaction: its SKU rows locked first (in code order, so a
crowd on one SKU queues instead of deadlocking), its promotion place taken in Redis
(app/promotions/places.py; given back if anything after it fails), the order row and its
lines, the units off on-hand stock (a conditional UPDATE: never below zero, all lines or
none), and the coupon redeemed (a conditional UPDATE: of two checkouts with one coupon,
exactly one succeeds). Any refusal rolls all of it back. Cancel and payment timeout give
the units, the coupon and the promotion place back through the lifecycle
(app/orders/release.py).

The order records the campaign of its coupon, else of its promotion, that campaign's
rules version now, and the channel it came through (X-Channel)."""

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
from app.campaigns import service as campaigns
from app.campaigns.models import Campaign
from app.container import Container
from app.coupons import service as coupons
from app.coupons.pricing import Line, Quote, price
from app.errors import ValidationFailed
from app.inventory import service as inventory
from app.inventory.models import Sku
from app.inventory.schemas import MAX_MONEY, MAX_UNITS
from app.orders import checkout_repository, repository
from app.orders.checkout_repository import NewOrderLine, NewRegularOrder
from app.orders.models import Order
from app.orders.schemas import CheckoutCreate, QuoteLineRead, QuoteRead
from app.promotions import places
from app.promotions.places import BasketLine, HeldPlace, Offer
from app.store.order_ids import new_regular_order_id


@dataclass(frozen=True, slots=True)
class Priced:
    quote: Quote
    skus: dict[str, Sku]
    coupon_campaign_id: int | None = None


async def _skus(session: AsyncSession, data: CheckoutCreate) -> dict[str, Sku]:
    found = await inventory.skus_by_code(session=session, skus=[i.sku for i in data.items])
    for index, line in enumerate(data.items):
        sku = found.get(line.sku)
        if sku is None:
            raise ValidationFailed(f"No SKU {line.sku!r}.", field=f"items.{index}.sku")
        if sku.price is None:
            raise ValidationFailed(
                f"SKU {line.sku!r} has no regular price; it is not sold outside flash sales.",
                field=f"items.{index}.sku",
            )
    return found


async def _price(
    *, session: AsyncSession, services: Container, user: User, data: CheckoutCreate
) -> Priced:
    units = sum(item.quantity for item in data.items)
    if units > MAX_UNITS:
        raise ValidationFailed(
            f"The order asks for {units} units, more than an order may hold ({MAX_UNITS}).",
            field="items",
        )
    skus = await _skus(session, data)
    lines = []
    for item in data.items:
        sku = skus[item.sku]
        assert sku.price is not None
        lines.append(
            Line(sku=sku.sku, category=sku.category, unit_price=sku.price, quantity=item.quantity)
        )
    terms = None
    coupon_campaign_id = None
    if data.coupon is not None:
        user_coupon, terms = await coupons.coupon_for_checkout(
            session=session, services=services, user=user, user_coupon_id=data.coupon
        )
        template = await coupons.get_coupon_row(session=session, coupon_id=user_coupon.coupon_id)
        coupon_campaign_id = template.campaign_id
    quote = price(lines, terms)
    if quote.subtotal > MAX_MONEY:
        raise ValidationFailed(
            f"The order's subtotal {quote.subtotal} is above the largest amount an order "
            f"may have ({MAX_MONEY}); split it.",
            field="items",
        )
    if quote.refusal is not None:
        raise coupons.refuse(quote.refusal, f"eligible subtotal {quote.eligible_subtotal}")
    return Priced(quote=quote, skus=skus, coupon_campaign_id=coupon_campaign_id)


def _basket(priced: Priced) -> list[BasketLine]:
    return [
        BasketLine(sku=line.sku, category=priced.skus[line.sku].category, amount=line.amount)
        for line in priced.quote.lines
    ]


def _with_promotion(quote: Quote, offer: Offer | None) -> Quote:
    """The undiscounted quote with the promotion's discount, its lines eligible as its
    scope says."""
    if offer is None:
        return quote
    return replace(
        quote,
        eligible_subtotal=offer.eligible_subtotal,
        discount=offer.discount,
        total=quote.subtotal - offer.discount,
        lines=tuple(
            replace(line, eligible=line.sku in offer.eligible_skus) for line in quote.lines
        ),
    )


async def quote(
    *, session: AsyncSession, services: Container, user: User, data: CheckoutCreate, now: datetime
) -> QuoteRead:
    priced = await _price(session=session, services=services, user=user, data=data)
    offer = None
    if data.coupon is None:
        offer = await places.quote_offer(
            session=session, services=services, user=user, lines=_basket(priced), now=now
        )
    final = _with_promotion(priced.quote, offer)
    return QuoteRead(
        subtotal=final.subtotal,
        discount=final.discount,
        total=final.total,
        eligible_subtotal=final.eligible_subtotal,
        coupon=data.coupon,
        promotion=None if offer is None else offer.applied,
        lines=[
            QuoteLineRead(
                sku=line.sku,
                name=priced.skus[line.sku].name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                eligible=line.eligible,
            )
            for line in final.lines
        ],
    )


async def _campaign(session: AsyncSession, priced: Priced, offer: Offer | None) -> Campaign | None:
    """The order's campaign: its coupon's, else its promotion's."""
    if priced.coupon_campaign_id is not None:
        return await campaigns.get_campaign(session, priced.coupon_campaign_id)
    return None if offer is None else offer.promotion.campaign


async def place_order(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    data: CheckoutCreate,
    idempotency_key: str | None,
    channel: str | None,
    now: datetime,
) -> tuple[Order, bool]:
    """Place a regular order; returns it and whether it is new (False: the first answer
    to this Idempotency-Key, nothing taken again). `channel`: the X-Channel header."""
    if idempotency_key is not None:
        first = await checkout_repository.regular_order_by_key(
            session, user_id=user.id, idempotency_key=idempotency_key
        )
        if first is not None:
            return first, False
    priced = await _price(session=session, services=services, user=user, data=data)
    # Before the order's lines reference the SKUs: see inventory.hold_for_order.
    held = await inventory.hold_for_order(
        session=session, skus=[line.sku for line in priced.quote.lines]
    )
    order_id = new_regular_order_id()
    offer = None
    if data.coupon is None:
        offer = await places.take_place(
            session=session,
            services=services,
            user=user,
            order_id=order_id,
            lines=_basket(priced),
            now=now,
        )
    try:
        order, new = await _store(
            session=session,
            services=services,
            user=user,
            data=data,
            idempotency_key=idempotency_key,
            channel=channel,
            order_id=order_id,
            priced=priced,
            offer=offer,
            held=held,
        )
    except BaseException:
        await _give_back(services, order_id, offer)
        raise
    if not new:
        await _give_back(services, order_id, offer)
    return order, new


async def _give_back(services: Container, order_id: str, offer: Offer | None) -> None:
    """The place this checkout took, back at once: its order is not placed."""
    if offer is not None:
        place = HeldPlace(order_id=order_id, promotion_id=offer.promotion.id, day=offer.day)
        await places.give_back_now(services=services, place=place)


async def _store(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    data: CheckoutCreate,
    idempotency_key: str | None,
    channel: str | None,
    order_id: str,
    priced: Priced,
    offer: Offer | None,
    held: inventory.HeldSkus,
) -> tuple[Order, bool]:
    final = _with_promotion(priced.quote, offer)
    campaign = await _campaign(session, priced, offer)
    stored = await checkout_repository.insert_regular_order(
        session,
        NewRegularOrder(
            id=order_id,
            user_id=user.id,
            quantity=sum(line.quantity for line in final.lines),
            amount=final.total,
            discount=final.discount,
            coupon_id=data.coupon,
            idempotency_key=idempotency_key,
            campaign_id=None if campaign is None else campaign.id,
            rules_version=None if campaign is None else campaign.rules_version,
            channel=campaigns.channel_of(campaign, campaigns.channel_code(channel)),
            promotion_id=None if offer is None else offer.promotion.id,
            promotion_day=None if offer is None else offer.day,
            member=user.member,
        ),
        [
            NewOrderLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                eligible=line.eligible,
            )
            for line in final.lines
        ],
        payment_timeout_seconds=services.settings.payment_timeout_seconds,
    )
    if not stored:
        # The same key, concurrently: the other request committed first; its answer stands
        # (and the promotion place taken for this one goes back: place_order).
        assert idempotency_key is not None
        first = await checkout_repository.regular_order_by_key(
            session, user_id=user.id, idempotency_key=idempotency_key
        )
        assert first is not None
        return first, False
    await inventory.take_for_order(
        session=session,
        held=held,
        order_id=order_id,
        units={line.sku: line.quantity for line in final.lines},
    )
    if data.coupon is not None:
        await coupons.use_coupon(
            session=session, user=user, user_coupon_id=data.coupon, order_id=order_id
        )
    order = await repository.get_order(session, order_id)
    assert order is not None
    return order, True
