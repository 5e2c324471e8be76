"""Regular checkout: SKUs at their regular price, at most one coupon. Never commits.

A quote and an order are priced by the same pure function (app/coupons/pricing.py). An
order is placed in one transaction: its SKU rows locked first (in code order, so a
crowd on one SKU queues instead of deadlocking), the order row and its lines, the units
off on-hand stock (a conditional UPDATE: never below zero, all lines or none), and the coupon
redeemed (a conditional UPDATE: of two checkouts with one coupon, exactly one succeeds).
Any refusal rolls all of it back. Cancel and payment timeout give the units and the
coupon back through the lifecycle (app/orders/release.py)."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
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
from app.store.order_ids import new_regular_order_id


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
) -> tuple[Quote, dict[str, Sku]]:
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
    if data.coupon is not None:
        _coupon, terms = await coupons.coupon_for_checkout(
            session=session, services=services, user=user, user_coupon_id=data.coupon
        )
    quote = price(lines, terms)
    if quote.subtotal > MAX_MONEY:
        raise ValidationFailed(
            f"The order's subtotal {quote.subtotal} is above the largest amount an order "
            f"may have ({MAX_MONEY}); split it.",
            field="items",
        )
    if quote.refusal is not None:
        raise coupons.refuse(quote.refusal, f"eligible subtotal {quote.eligible_subtotal}")
    return quote, skus


async def quote(
    *, session: AsyncSession, services: Container, user: User, data: CheckoutCreate
) -> QuoteRead:
    priced, skus = await _price(session=session, services=services, user=user, data=data)
    return QuoteRead(
        subtotal=priced.subtotal,
        discount=priced.discount,
        total=priced.total,
        eligible_subtotal=priced.eligible_subtotal,
        coupon=data.coupon,
        lines=[
            QuoteLineRead(
                sku=line.sku,
                name=skus[line.sku].name,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                eligible=line.eligible,
            )
            for line in priced.lines
        ],
    )


async def place_order(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    data: CheckoutCreate,
    idempotency_key: str | None,
) -> tuple[Order, bool]:
    """Place a regular order; returns it and whether it is new (False: the first answer
    to this Idempotency-Key, nothing taken again)."""
    if idempotency_key is not None:
        first = await checkout_repository.regular_order_by_key(
            session, user_id=user.id, idempotency_key=idempotency_key
        )
        if first is not None:
            return first, False
    priced, _skus = await _price(session=session, services=services, user=user, data=data)
    # Before the order's lines reference the SKUs: see inventory.hold_for_order.
    held = await inventory.hold_for_order(session=session, skus=[line.sku for line in priced.lines])
    order_id = new_regular_order_id()
    stored = await checkout_repository.insert_regular_order(
        session,
        NewRegularOrder(
            id=order_id,
            user_id=user.id,
            quantity=sum(line.quantity for line in priced.lines),
            amount=priced.total,
            discount=priced.discount,
            coupon_id=data.coupon,
            idempotency_key=idempotency_key,
        ),
        [
            NewOrderLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                eligible=line.eligible,
            )
            for line in priced.lines
        ],
        payment_timeout_seconds=services.settings.payment_timeout_seconds,
    )
    if not stored:
        # The same key, concurrently: the other request committed first; its answer stands.
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
        units={line.sku: line.quantity for line in priced.lines},
    )
    if data.coupon is not None:
        await coupons.use_coupon(
            session=session, user=user, user_coupon_id=data.coupon, order_id=order_id
        )
    order = await repository.get_order(session, order_id)
    assert order is not None
    return order, True
