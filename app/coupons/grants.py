"""Bulk grants (补偿券, rewards): one coupon to each of a list of users, or to every buyer
of a flash-sale event, as a background job with progress.

A grant is a job row holding its targets (a snapshot taken when it is created) and its
progress; app/flows/grants.py runs it.

Grants are operators' decisions: they ignore the claim window, the audience and the
per-user limit, and do not take from `total_quantity` (which bounds claims only).
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit_log import service as audit_log
from app.auth import User
from app.container import Container
from app.coupons import repository
from app.coupons.errors import CouponNotFound
from app.coupons.models import Coupon
from app.coupons.schemas import GrantCreate
from app.db import after_commit
from app.errors import InvalidState, ValidationFailed
from app.jobs import repository as jobs
from app.jobs.models import Job, JobKind


def _dedupe(user_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(user_ids))


def _valid_until(coupon: Coupon, now: datetime) -> datetime:
    if coupon.valid_until is not None:
        return coupon.valid_until
    assert coupon.valid_days_after_claim is not None
    return now + timedelta(days=coupon.valid_days_after_claim)


async def create_grant(
    *,
    session: AsyncSession,
    coupon_id: int,
    data: GrantCreate,
    idempotency_key: str | None = None,
    actor: User | None = None,
) -> Job:
    """The grant's job, with its targets fixed now (so a resumed grant reaches the same
    users). Every granted coupon is valid until the same moment. With an Idempotency-Key,
    a retried request gets the job the first one created (one coupon each, once)."""
    kind = JobKind.COUPON_GRANT.value
    if idempotency_key is not None:
        first = await jobs.job_by_key(session, kind=kind, idempotency_key=idempotency_key)
        if first is not None:
            return first
    coupon = await repository.get_coupon(session, coupon_id)
    if coupon is None:
        raise CouponNotFound(f"No coupon {coupon_id}.")
    if coupon.held:
        raise InvalidState(
            f"Coupon {coupon_id} belongs to campaign {coupon.campaign_id}, not approved yet: "
            "nothing of it is handed out before the approval."
        )
    if data.user_ids is not None:
        users = _dedupe(data.user_ids)
    elif data.buyers_of_event is not None:
        users = await repository.buyers_of_event(session, data.buyers_of_event)
    else:
        raise ValidationFailed(
            "give exactly one of user_ids and buyers_of_event.", field="user_ids"
        )
    valid_until = _valid_until(coupon, datetime.now(UTC))
    if valid_until <= datetime.now(UTC):
        raise ValidationFailed(
            f"coupon {coupon_id} is no longer valid (valid until {valid_until.isoformat()}).",
            field="coupon_id",
        )
    job = await jobs.insert_job(
        session,
        kind=kind,
        payload={
            "coupon_id": coupon_id,
            "valid_until": valid_until.isoformat(),
            "user_ids": users,
            "buyers_of_event": data.buyers_of_event,
        },
        total=len(users),
        idempotency_key=idempotency_key,
    )
    if job is None:  # the same key, concurrently: the first request's job
        assert idempotency_key is not None
        job = await jobs.job_by_key(session, kind=kind, idempotency_key=idempotency_key)
        assert job is not None
        return job
    if actor is not None:
        await audit_log.record(
            session=session,
            actor=actor,
            action="coupon.grant",
            target=f"coupon:{coupon_id}",
            event_id=data.buyers_of_event,
            after={
                "job_id": job.id,
                "users": len(users),
                "buyers_of_event": data.buyers_of_event,
                "valid_until": valid_until,
            },
        )
    return job


def start_after_commit(*, session: AsyncSession, services: Container, job_id: int) -> None:
    """Once the job's creation commits, run it in this process (the container's job
    starter, app/flows/grants.py); if the process dies, the worker resumes it once the
    lease runs out."""

    async def start() -> None:
        if services.start_job is not None:
            services.start_job(job_id)

    after_commit(session, start)
