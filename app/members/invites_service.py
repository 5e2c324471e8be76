"""Invitations: a user's code, accepting one, and the reward once the invitee pays.

Accepting: an unknown code is 404 `not_found`; one's own 422 `validation_error`; an
invitee with a paid order (ever: a refunded order was paid too) 403 `audience_mismatch`;
one who accepted another code 409 `invalid_state`; the same code again answers the invite
as it stands (repeat-safe).

Rewarding: when the invitee's first order is paid (app/members/settlement.py, in the
transaction that marks it paid), inviter and invitee each get one coupon of
SECKILL_INVITE_REWARD_COUPON_ID through the coupon grant machinery
(app/coupons/grants.py). The invite's conditional UPDATE decides it once; its grant job
(idempotency key `invite-reward:<invite id>`) runs after the commit, is resumed by the
worker if this process dies, and gives each user one coupon however often it runs. A
reward that cannot be granted (no coupon configured, or it is missing, expired or held
by an unapproved campaign) never fails the payment: the invite records `failed` and why.
Grants do not take from a template's `total_quantity`, so an exhausted template still
rewards."""

import logging
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import User
from app.container import Container
from app.coupons import grants
from app.coupons import repository as coupons
from app.coupons.schemas import GrantCreate
from app.errors import AppError, ValidationFailed
from app.members import invites_repository as repository
from app.members.invites_errors import AlreadyInvited, InviteNotFound, NotANewUser
from app.members.invites_models import Invite, RewardStatus

logger = logging.getLogger(__name__)


def _new_code() -> str:
    # 72 random bits: unguessable, 12 URL-safe characters.
    return secrets.token_urlsafe(9)


async def invite_code(*, session: AsyncSession, user: User) -> str:
    """The user's code, made on first ask."""
    code = await repository.code_of(session, user.id)
    while code is None:
        code = await repository.insert_code(session, user_id=user.id, code=_new_code())
    return code


async def accept(*, session: AsyncSession, user: User, code: str) -> Invite:
    inviter = await repository.owner_of(session, code)
    if inviter is None:
        raise InviteNotFound(f"No invite code {code!r}.")
    if inviter == user.id:
        raise ValidationFailed("You cannot accept your own invite code.", field="code")
    await repository.lock_invitee(session, user.id)
    invite = await repository.invite_of(session, user.id)
    if invite is None:
        if await coupons.has_paid_order(session, user.id):
            raise NotANewUser("Invites are for users who have not paid an order yet.")
        await repository.insert_invite(session, code=code, inviter_id=inviter, invitee_id=user.id)
        invite = await repository.invite_of(session, user.id)
        assert invite is not None, "inserted under the invitee's lock"
    if invite.code != code:
        raise AlreadyInvited("You have accepted another invite code; only one counts.")
    return invite


async def reward_first_payment(
    *, session: AsyncSession, services: Container, invitee_id: str, order_id: str
) -> None:
    """The paid order's invite reward, if its buyer was invited and waits for one."""
    await repository.lock_invitee(session, invitee_id)
    invite = await repository.claim_reward(session, invitee_id=invitee_id, order_id=order_id)
    if invite is None:
        return
    coupon_id = services.settings.invite_reward_coupon_id
    if coupon_id is None:
        logger.warning("invite %s: no SECKILL_INVITE_REWARD_COUPON_ID, no reward", invite.id)
        await repository.record_reward(
            session,
            invite_id=invite.id,
            status=RewardStatus.FAILED,
            job_id=None,
            error="no reward coupon configured (SECKILL_INVITE_REWARD_COUPON_ID)",
        )
        return
    try:
        job = await grants.create_grant(
            session=session,
            coupon_id=coupon_id,
            data=GrantCreate(user_ids=[invite.inviter_id, invite.invitee_id]),
            idempotency_key=f"invite-reward:{invite.id}",
        )
    except AppError as refused:  # checked before anything is written: the payment stands
        logger.warning("invite %s: reward coupon %s refused: %s", invite.id, coupon_id, refused)
        await repository.record_reward(
            session,
            invite_id=invite.id,
            status=RewardStatus.FAILED,
            job_id=None,
            error=refused.detail[:500],
        )
        return
    await repository.record_reward(
        session, invite_id=invite.id, status=RewardStatus.GRANTED, job_id=job.id, error=None
    )
    grants.start_after_commit(session=session, services=services, job_id=job.id)
