"""Every SQL statement of invitations."""

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.members.invites_models import Invite, InviteCode, RewardStatus


async def code_of(session: AsyncSession, user_id: str) -> str | None:
    code: str | None = await session.scalar(
        select(InviteCode.code).where(InviteCode.user_id == user_id)
    )
    return code


async def insert_code(session: AsyncSession, *, user_id: str, code: str) -> str | None:
    """Store the user's code unless they have one (or, in the astronomically rare case,
    the code is someone else's); the user's code either way, None if the code collided."""
    await session.execute(
        pg_insert(InviteCode).values(user_id=user_id, code=code).on_conflict_do_nothing()
    )
    return await code_of(session, user_id)


async def owner_of(session: AsyncSession, code: str) -> str | None:
    owner: str | None = await session.scalar(
        select(InviteCode.user_id).where(InviteCode.code == code)
    )
    return owner


async def lock_invitee(session: AsyncSession, user_id: str) -> None:
    """Serialise, for one user, accepting an invite and paying an order (until the
    transaction ends): else an accept that saw no paid order and a payment that saw no
    invite could both commit, and the invite would never be rewarded."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('invitee:' || :u))"), {"u": user_id}
    )


async def invite_of(session: AsyncSession, invitee_id: str) -> Invite | None:
    return await session.scalar(
        select(Invite)
        .where(Invite.invitee_id == invitee_id)
        .execution_options(populate_existing=True)
    )


async def insert_invite(
    session: AsyncSession, *, code: str, inviter_id: str, invitee_id: str
) -> None:
    await session.execute(
        pg_insert(Invite)
        .values(code=code, inviter_id=inviter_id, invitee_id=invitee_id)
        .on_conflict_do_nothing(index_elements=[Invite.invitee_id])
    )


async def claim_reward(session: AsyncSession, *, invitee_id: str, order_id: str) -> Invite | None:
    """Decide the invitee's waiting reward on this paid order: the invite, or None if
    there is none waiting (no invite, or decided by an earlier payment). One conditional
    UPDATE: of two payments racing, the second finds it decided."""
    found = await session.scalar(
        text(
            """
            UPDATE invites SET reward_status = :failed, rewarded_order_id = :order_id,
                               decided_at = now()
            WHERE invitee_id = :invitee AND reward_status = :waiting
            RETURNING id
            """
        ),
        {
            "invitee": invitee_id,
            "order_id": order_id,
            "waiting": RewardStatus.WAITING.value,
            # Failed until the grant is made (record_reward): a grant that cannot be
            # made leaves it so, with the reason.
            "failed": RewardStatus.FAILED.value,
        },
    )
    return None if found is None else await session.get(Invite, found, populate_existing=True)


async def record_reward(
    session: AsyncSession,
    *,
    invite_id: int,
    status: RewardStatus,
    job_id: int | None,
    error: str | None,
) -> None:
    await session.execute(
        text(
            """
            UPDATE invites SET reward_status = :status, reward_job_id = :job_id,
                               reward_error = :error
            WHERE id = :id
            """
        ),
        {"id": invite_id, "status": status.value, "job_id": job_id, "error": error},
    )
