"""Returns' rules. Never commits: the request's session owns the transaction (app/db.py).

    requested -> approved   (the order refunded through the gateway, its goods on hand)
              -> rejected   (with the operator's reason)

A rejected return does not close the order: the buyer may ask again (with a better
photo, say) while the return window lasts; only one return of an order waits at a time.
"""

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.container import Container
from app.errors import ValidationFailed
from app.metrics import order_returns
from app.orders import service as orders
from app.orders.models import RETURNABLE_STATUSES, Order, TransitionCause
from app.payments import service as payments
from app.returns import repository
from app.returns.errors import ReturnDecided, ReturnNotFound, ReturnRefused
from app.returns.models import OrderReturn, ReturnStatus
from app.returns.schemas import ReturnCreate, ReturnRead


def _bounded(text: str | None, *, field: str, services: Container) -> None:
    limit = services.settings.return_note_max_length
    if text is not None and len(text) > limit:
        raise ValidationFailed(f"{field} is longer than {limit} characters.", field=field)


def _ensure_returnable(order: Order, *, now: datetime, window_days: int) -> None:
    if order.status not in RETURNABLE_STATUSES or order.paid_at is None:
        raise ReturnRefused(
            f"Order {order.id!r} is {order.status}; only "
            f"{' or '.join(RETURNABLE_STATUSES)} orders can be returned."
        )
    # Measured from the payment: a shipped order's window does not restart at shipping.
    if now > order.paid_at + timedelta(days=window_days):
        raise ReturnRefused(
            f"Order {order.id!r} was paid more than {window_days} days ago: past the return window."
        )


async def request_return(
    *,
    session: AsyncSession,
    services: Container,
    user: User,
    order_id: str,
    data: ReturnCreate,
    now: datetime,
) -> OrderReturn:
    """The owner asks to return a paid or shipped order within the return window of its
    payment. Someone else's order is not found (as for every order read)."""
    _bounded(data.note, field="note", services=services)
    order = await orders.find_stored_order(
        session=session, services=services, user=user, order_id=order_id, operator=False
    )
    _ensure_returnable(order, now=now, window_days=services.settings.return_window_days)
    created = await repository.insert_return(
        session,
        order_id=order.id,
        user_id=order.user_id,
        event_id=order.event_id,
        campaign_id=order.campaign_id,
        reason=data.reason.value,
        note=data.note,
    )
    if created is None:
        raise ReturnRefused(f"A return of order {order.id!r} is already waiting for a decision.")
    order_returns.labels("requested", data.reason.value).inc()
    return created


async def _requested(session: AsyncSession, return_id: int) -> OrderReturn:
    """The return, locked for this transaction (approvals and rejections of it take
    turns), if it still waits for a decision."""
    found = await repository.lock_return(session, return_id)
    if found is None:
        raise ReturnNotFound(f"No return {return_id}.")
    if found.status != ReturnStatus.REQUESTED.value:
        raise ReturnDecided(f"Return {return_id} is {found.status} already.")
    return found


async def approve(
    *, session: AsyncSession, services: Container, actor: User, return_id: int, now: datetime
) -> OrderReturn:
    """Refund the order through the payments' refund (gateway once, points taken back
    once, audited) and send its goods back on hand, never into the sale.

    The return's row lock is held across the gateway's refund, unlike an operator's plain
    refund: approvals are rare, and holding it means a racing approval or rejection waits
    and then finds the return decided, so the money never leaves for a return another
    operator rejected, and twenty approvals at once ask the gateway once."""
    found = await _requested(session, return_id)
    order = await orders.reload_order(session=session, order_id=found.order_id)
    if order.status not in RETURNABLE_STATUSES:
        # Refunded meanwhile by an operator, say: nothing left to give back.
        raise ReturnRefused(f"Order {order.id!r} is {order.status}; it cannot be refunded.")
    await orders.mark_goods_returned(session=session, order_id=order.id)
    await payments.refund_order(
        session=session, services=services, user=actor, order=order, cause=TransitionCause.RETURN
    )
    decided = await repository.decide(
        session,
        return_id=found.id,
        status=ReturnStatus.APPROVED,
        decided_by=actor.id,
        decided_at=now,
    )
    await _audit(session=session, actor=actor, decided=decided, event_id=order.event_id)
    order_returns.labels("approved", decided.reason).inc()
    return decided


async def reject(
    *,
    session: AsyncSession,
    services: Container,
    actor: User,
    return_id: int,
    reason: str,
    now: datetime,
) -> OrderReturn:
    """Refuse the return, saying why; the order stays as it is."""
    _bounded(reason, field="reason", services=services)
    found = await _requested(session, return_id)
    decided = await repository.decide(
        session,
        return_id=found.id,
        status=ReturnStatus.REJECTED,
        decided_by=actor.id,
        decided_at=now,
        rejection_reason=reason,
    )
    await _audit(session=session, actor=actor, decided=decided, event_id=found.event_id)
    order_returns.labels("rejected", decided.reason).inc()
    return decided


async def _audit(
    *, session: AsyncSession, actor: User, decided: OrderReturn, event_id: int | None
) -> None:
    verb = "approve" if decided.status == ReturnStatus.APPROVED.value else "reject"
    await audit_log.record(
        session=session,
        actor=actor,
        action=f"return.{verb}",
        target=f"return:{decided.id}",
        event_id=event_id,
        before={"status": ReturnStatus.REQUESTED.value, "order_id": decided.order_id},
        after={"status": decided.status, "rejection_reason": decided.rejection_reason},
    )


async def list_returns(
    *,
    session: AsyncSession,
    event_id: int | None,
    status: ReturnStatus | None,
    limit: int,
    offset: int,
) -> list[ReturnRead]:
    rows = await repository.list_returns(
        session,
        event_id=event_id,
        status=None if status is None else status.value,
        limit=limit,
        offset=offset,
    )
    return [ReturnRead.model_validate(row) for row in rows]
