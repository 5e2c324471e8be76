"""Bulk grants (补偿券, rewards): one coupon to each of a list of users, or to every buyer
of a flash-sale event, as a background job with progress.

A grant is a job row holding its targets (a snapshot taken when it is created) and its
progress. A runner takes the job's lease, then works in steps: each step grants to the
next batch of users and records the progress in one transaction. A runner that dies
leaves the lease to run out; the next runner (the worker's job loop, or
`seckill grant --resume`) continues from the recorded progress. Each user gets exactly
one coupon from a grant however often it is resumed: user_coupons is unique on
(job_id, user_id), and a batch granted again inserts nothing.

Grants are operators' decisions: they ignore the claim window, the audience and the
per-user limit, and do not take from `total_quantity` (which bounds claims only).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit_log import service as audit_log
from app.auth import User
from app.config import Settings
from app.container import Container
from app.coupons import repository
from app.coupons.errors import CouponNotFound
from app.coupons.models import Coupon
from app.coupons.schemas import GrantCreate
from app.db import after_commit
from app.errors import ValidationFailed
from app.jobs import repository as jobs
from app.jobs.models import Job, JobKind, JobStatus
from app.metrics import coupons_granted
from app.store.order_ids import new_claim_id

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
# Background runs started by the API, kept referenced until they finish.
_running: set["asyncio.Task[bool]"] = set()


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


@dataclass
class GrantRunner:
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings

    async def run(self, job_id: int, progress: Progress | None = None) -> bool:
        """Run (or resume) the grant if nobody else holds it; True if this call took it."""
        lease = self.settings.job_lease_seconds
        async with self.sessionmaker() as session, session.begin():
            job = await jobs.take_lease(session, job_id=job_id, seconds=lease)
            if job is None:
                return False
            payload, done, total = job.payload, job.done, job.total
        coupon_id = int(payload["coupon_id"])
        valid_until = datetime.fromisoformat(payload["valid_until"])
        users: list[str] = payload["user_ids"]
        batch = self.settings.grant_batch_size
        try:
            if progress:
                progress(done, total)
            while done < total:
                chunk = users[done : done + batch]
                async with self.sessionmaker() as session, session.begin():
                    new = await repository.insert_grants(
                        session,
                        job_id=job_id,
                        coupon_id=coupon_id,
                        ids=[new_claim_id(coupon_id) for _ in chunk],
                        user_ids=chunk,
                        valid_until=valid_until,
                    )
                    done += len(chunk)
                    await jobs.advance(session, job_id=job_id, done=done, seconds=lease)
                coupons_granted.inc(new)
                if progress:
                    progress(done, total)
            async with self.sessionmaker() as session, session.begin():
                await jobs.finish(session, job_id=job_id, status=JobStatus.DONE)
        except asyncio.CancelledError:
            # Shut down mid-way: let the next runner take over at once.
            async with self.sessionmaker() as session, session.begin():
                await jobs.release_lease(session, job_id=job_id)
            raise
        except Exception as exc:
            logger.exception("grant job %s failed", job_id)
            async with self.sessionmaker() as session, session.begin():
                await jobs.finish(
                    session, job_id=job_id, status=JobStatus.FAILED, error=str(exc)[:500]
                )
            return True
        logger.info("grant job %s done: %d users", job_id, total)
        return True

    async def resume_orphans(self) -> int:
        """Run every running job nobody holds (the worker's job loop); how many it ran."""
        async with self.sessionmaker() as session:
            orphans = await jobs.orphaned_jobs(session, limit=10)
        ran = 0
        for job_id in orphans:
            ran += await self.run(job_id)
        return ran

    async def loop(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.resume_orphans()
            except Exception as exc:  # Postgres away: the next pass retries
                logger.warning("job loop failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def start_after_commit(*, session: AsyncSession, services: Container, job_id: int) -> None:
    """Once the job's creation commits, run it in this process (start_in_background)."""
    runner = GrantRunner(sessionmaker=services.sessionmaker, settings=services.settings)

    async def start() -> None:
        start_in_background(runner, job_id)

    after_commit(session, start)


def start_in_background(runner: GrantRunner, job_id: int) -> None:
    """Run the grant in this process after the response; if the process dies, the worker
    resumes it once the lease runs out."""
    task = asyncio.create_task(runner.run(job_id))
    _running.add(task)
    task.add_done_callback(_running.discard)


async def wait_for_background() -> None:
    """Tests: until every grant started in this process has finished."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)
