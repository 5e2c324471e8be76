"""Paying, payment notifications and refunds. Never commits: the request's session owns
the transaction (app/db.py), and a refunded order's stock goes back after its commit.

Money and status can disagree only for a moment: when the gateway has charged but the
order's conditional update loses (the payment timeout or a cancellation got there first),
the charge is given back through the gateway (before answering the shopper 409, or the
gateway's late notification 200 `refunded`). A charge whose confirmation never came is
found by the payment-timeout sweep before it cancels (settle_found_charge).
"""

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.container import Container
from app.gateways.payment import Charge
from app.members import settlement as members
from app.metrics import charges_given_back
from app.orders import service as orders
from app.orders.errors import WrongOrderState
from app.orders.models import Order, OrderStatus, TransitionCause
from app.payments.errors import AmountMismatch
from app.payments.schemas import NotificationOutcome, PaymentNotification

logger = logging.getLogger(__name__)

# The gateway's notifications may concern any order, as an operator's actions do.
_GATEWAY = User(id="payment-gateway", is_admin=True)


async def pay(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    order_id: str,
    payment_token: str,
) -> Order:
    """Charge the owner's pending order through the gateway and mark it paid. Paying an
    order this very charge already paid (a double click, a retry after a timeout, or the
    gateway's notification recorded first) answers the paid order: the charge is
    idempotent per order, so asking again names the charge that paid it."""
    order = await orders.find_stored_order(
        session=session, services=services, user=user, order_id=order_id, operator=False
    )
    if order.status != OrderStatus.PAID.value:
        orders.ensure_status(order, OrderStatus.PAID)
    await orders.end_read(session, order)
    charge = await services.gateway.charge(
        order_id=order.id, amount=order.amount, payment_token=payment_token
    )
    if order.status == OrderStatus.PAID.value:
        if order.payment_reference == charge.reference:
            return await orders.reload_order(session=session, order_id=order.id)
        # Paid by another charge: this one must not cost the customer anything.
        await _give_back(
            session=session, services=services, order=order, reference=charge.reference
        )
        raise WrongOrderState(order.id, order.status, "paid", OrderStatus.PENDING_PAYMENT.value)
    paid = await _settle(
        session=session,
        services=services,
        order=order,
        reference=charge.reference,
        cause=TransitionCause.PAYMENT,
    )
    if paid is None:  # this charge paid it meanwhile (the other click, the notification)
        return await orders.reload_order(session=session, order_id=order.id)
    return paid


async def record_notification(
    *, session: AsyncSession, services: Container, notification: PaymentNotification
) -> NotificationOutcome:
    """Apply a (verified) gateway notification; the same notification twice changes
    nothing the second time."""
    order = await orders.find_stored_order(
        session=session,
        services=services,
        user=_GATEWAY,
        order_id=notification.order_id,
        operator=True,
    )
    if notification.status == "failed":
        logger.info("payment %s for order %s failed", notification.reference, order.id)
        return NotificationOutcome.IGNORED
    if notification.amount != order.amount:
        logger.error(
            "payment %s for order %s: %s paid, %s due; not recorded",
            notification.reference,
            order.id,
            notification.amount,
            order.amount,
        )
        raise AmountMismatch(
            f"Order {order.id!r} costs {order.amount}; the notification says "
            f"{notification.amount}. Nothing was recorded."
        )
    if order.payment_reference == notification.reference:
        return NotificationOutcome.DUPLICATE
    if order.status != OrderStatus.PENDING_PAYMENT.value:
        # Late (the timeout or the shopper cancelled first) or a second charge: money
        # without an order goes back. Answered 200, else the gateway would retry forever;
        # a second delivery finds the refund made and records nothing more.
        await _give_back(
            session=session, services=services, order=order, reference=notification.reference
        )
        return NotificationOutcome.REFUNDED
    return await _settle_unattended(
        session=session,
        services=services,
        order=order,
        reference=notification.reference,
        cause=TransitionCause.PAYMENT_CALLBACK,
    )


async def settle_found_charge(
    *, session: AsyncSession, services: Container, order_id: str, charge: Charge
) -> bool:
    """A charge the gateway took for a pending order whose confirmation never came (the
    payment sweep asked the gateway): the order is paid by it, as the webhook would have
    done. True if this paid the order; a charge for another amount is given back."""
    order = await orders.reload_order(session=session, order_id=order_id)
    if charge.amount != order.amount:
        logger.error(
            "charge %s for order %s: %s charged, %s due; given back",
            charge.reference,
            order.id,
            charge.amount,
            order.amount,
        )
        await _give_back(
            session=session, services=services, order=order, reference=charge.reference
        )
        return False
    outcome = await _settle_unattended(
        session=session,
        services=services,
        order=order,
        reference=charge.reference,
        cause=TransitionCause.PAYMENT_CHECK,
    )
    return outcome is NotificationOutcome.RECORDED


async def refund(*, session: AsyncSession, services: Container, user: User, order_id: str) -> Order:
    """Give a paid order's money back (operators); once the refund commits, its stock
    goes back (app/orders/release.py)."""
    order = await orders.find_stored_order(
        session=session, services=services, user=user, order_id=order_id, operator=True
    )
    orders.ensure_status(order, OrderStatus.REFUNDED)
    await orders.end_read(session, order)
    return await refund_order(session=session, services=services, user=user, order=order)


async def refund_order(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    order: Order,
    cause: TransitionCause = TransitionCause.REFUND,
) -> Order:
    """Refund this order, read in the status it is refunded from (paid; a return's also
    shipped): the gateway's refund, the order `refunded`, its points taken back, the
    audit entry, and its units back after the commit. An approved return (app/returns)
    calls it holding the return's row lock."""
    assert order.payment_reference is not None, "a paid order has a payment reference"
    # Read now: reloading the refunded order refreshes `order` too when it is attached.
    source = OrderStatus(order.status)
    # Money first: a refund the gateway has not made must never show as `refunded`. A
    # racing second refund reaches the gateway with the same reference (idempotent) and
    # then loses the conditional update below.
    await services.gateway.refund(
        reference=order.payment_reference, order_id=order.id, amount=order.amount
    )
    refunded = await orders.move_or_refuse(
        session=session,
        order=order,
        to_status=OrderStatus.REFUNDED,
        cause=cause,
        from_status=source,
    )
    # The points go back in the refund's transaction: two refunds racing take them once.
    await members.order_refunded(session=session, order=refunded)
    await audit_log.record(
        session=session,
        actor=user,
        action="order.refund",
        target=f"order:{order.id}",
        event_id=order.event_id,
        before={"status": source.value},
        after={"status": refunded.status, "amount": refunded.amount},
    )
    orders.give_back_after_commit(session=session, services=services, order=refunded)
    return refunded


async def _settle(
    *,
    session: AsyncSession,
    services: Container,
    order: Order,
    reference: str,
    cause: TransitionCause,
) -> Order | None:
    """Mark the order paid by this charge and return it; None if this very charge had
    already paid it. If another change won, give the money back and refuse."""
    if await orders.move(
        session=session,
        order=order,
        to_status=OrderStatus.PAID,
        cause=cause,
        payment_reference=reference,
    ):
        paid = await orders.reload_order(session=session, order_id=order.id)
        # In the transaction that marks it paid: whoever settles it (the shopper, the
        # webhook), points and an invite reward come with the status, once.
        await members.order_paid(session=session, services=services, order=paid)
        return paid
    current = await orders.reload_order(session=session, order_id=order.id)
    if current.payment_reference == reference:
        return None
    # Charged for an order that timed out, was cancelled, or was paid by another charge
    # meanwhile: the customer must not pay for nothing.
    await _give_back(session=session, services=services, order=current, reference=reference)
    raise WrongOrderState(order.id, current.status, "paid", OrderStatus.PENDING_PAYMENT.value)


async def _settle_unattended(
    *,
    session: AsyncSession,
    services: Container,
    order: Order,
    reference: str,
    cause: TransitionCause,
) -> NotificationOutcome:
    """_settle for a charge no shopper waits on (the webhook, the sweep): a race lost to a
    cancel is answered `refunded` (the charge was given back), not raised."""
    try:
        paid = await _settle(
            session=session, services=services, order=order, reference=reference, cause=cause
        )
    except WrongOrderState:
        return NotificationOutcome.REFUNDED
    # None: the same charge, settled twice at once, was recorded by the other.
    return NotificationOutcome.RECORDED if paid else NotificationOutcome.DUPLICATE


async def _give_back(
    *, session: AsyncSession, services: Container, order: Order, reference: str
) -> None:
    """Refund a charge that paid nothing (the order is `order.status`). The gateway's
    refund is idempotent per charge; only the first is logged, counted and put in the
    audit log (kept when the caller commits: the webhook's answer, the sweep)."""
    if not await services.gateway.refund(
        reference=reference, order_id=order.id, amount=order.amount
    ):
        return
    logger.warning("order %s is %s: gave back charge %s", order.id, order.status, reference)
    charges_given_back.labels(order.status).inc()
    await audit_log.record(
        session=session,
        actor=_GATEWAY,
        action="payment.given_back",
        target=f"order:{order.id}",
        event_id=order.event_id,
        before={"status": order.status},
        after={"charge": reference, "amount": order.amount},
    )
