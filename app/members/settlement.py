"""What paying and refunding an order mean for members: points earned and taken back,
and an invitee's first payment rewarded. app/payments calls these in the transaction
that moves the order (after its conditional UPDATE won), so they happen exactly when the
order's status changes, whoever changes it: the shopper's pay, the gateway's webhook, an
operator's refund."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.container import Container
from app.members import invites_service, points_service
from app.orders.models import Order


async def order_paid(*, session: AsyncSession, services: Container, order: Order) -> None:
    await points_service.earn_for_order(
        session=session,
        user_id=order.user_id,
        order_id=order.id,
        amount=order.amount,
        # The buyer's membership when the order was placed (a snapshot on the order: the
        # webhook that settles it carries no shopper token).
        member=order.member,
        multiplier=services.settings.member_points_multiplier,
    )
    await invites_service.reward_first_payment(
        session=session, services=services, invitee_id=order.user_id, order_id=order.id
    )


async def order_refunded(*, session: AsyncSession, order: Order) -> None:
    await points_service.reverse_for_order(
        session=session, user_id=order.user_id, order_id=order.id
    )
