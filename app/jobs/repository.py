"""Every SQL statement of the jobs domain."""

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.jobs.models import Job, JobStatus


async def insert_job(
    session: AsyncSession,
    *,
    kind: str,
    payload: dict[str, Any],
    total: int,
    idempotency_key: str | None = None,
) -> Job | None:
    """A new job (done at once if it has nothing to do); None if a job of this kind with
    this Idempotency-Key exists (a retried request waits for the first to commit)."""
    new_id = await session.scalar(
        pg_insert(Job)
        .values(
            kind=kind,
            status=(JobStatus.DONE if total == 0 else JobStatus.RUNNING).value,
            payload=payload,
            done=0,
            total=total,
            idempotency_key=idempotency_key,
            finished_at=func.now() if total == 0 else None,
        )
        .on_conflict_do_nothing(index_elements=[Job.kind, Job.idempotency_key])
        .returning(Job.id)
    )
    return None if new_id is None else await get_job(session, new_id)


async def job_by_key(session: AsyncSession, *, kind: str, idempotency_key: str) -> Job | None:
    return await session.scalar(
        select(Job).where(Job.kind == kind, Job.idempotency_key == idempotency_key)
    )


async def get_job(session: AsyncSession, job_id: int, *, with_payload: bool = False) -> Job | None:
    """The job (its payload only if asked: progress polls do not need it)."""
    options = [undefer(Job.payload)] if with_payload else []
    return await session.get(Job, job_id, populate_existing=True, options=options)


async def take_lease(session: AsyncSession, *, job_id: int, seconds: float) -> Job | None:
    """Hold the job for `seconds` if it is running and nobody holds it; None otherwise."""
    taken = await session.scalar(
        text(
            """
            UPDATE jobs SET lease_until = now() + make_interval(secs => :seconds),
                            updated_at = now()
            WHERE id = :id AND status = 'running'
              AND (lease_until IS NULL OR lease_until < now())
            RETURNING id
            """
        ),
        {"id": job_id, "seconds": seconds},
    )
    if taken is None:
        return None
    return await get_job(session, job_id, with_payload=True)


async def advance(session: AsyncSession, *, job_id: int, done: int, seconds: float) -> None:
    """Record progress (never backwards) and extend the lease, in the step's transaction."""
    await session.execute(
        text(
            """
            UPDATE jobs SET done = greatest(done, :done), updated_at = now(),
                            lease_until = now() + make_interval(secs => :seconds)
            WHERE id = :id
            """
        ),
        {"id": job_id, "done": done, "seconds": seconds},
    )


async def finish(
    session: AsyncSession, *, job_id: int, status: JobStatus, error: str | None = None
) -> None:
    await session.execute(
        text(
            """
            UPDATE jobs SET status = :status, error = :error, finished_at = now(),
                            updated_at = now(), lease_until = NULL
            WHERE id = :id AND status = 'running'
            """
        ),
        {"id": job_id, "status": status.value, "error": error},
    )


async def release_lease(session: AsyncSession, *, job_id: int) -> None:
    await session.execute(text("UPDATE jobs SET lease_until = NULL WHERE id = :id"), {"id": job_id})


async def orphaned_jobs(session: AsyncSession, *, kind: str, limit: int) -> list[int]:
    """Running jobs of this kind nobody holds (their runner died, or never started)."""
    rows = await session.scalars(
        text(
            """
            SELECT id FROM jobs
            WHERE status = 'running' AND kind = :kind
              AND (lease_until IS NULL OR lease_until < now())
            ORDER BY id LIMIT :limit
            """
        ),
        {"limit": limit, "kind": kind},
    )
    return list(rows.all())
