"""Running bulk grants (app/coupons/grants.py creates them): a runner takes the job's
lease, then works in steps: each step grants to the next batch of users and records the
progress in one transaction. A runner that dies leaves the lease to run out; the next
runner (the worker's job loop, or `seckill grant --resume`) continues from the recorded
progress. Each user gets exactly one coupon from a grant however often it is resumed:
user_coupons is unique on (job_id, user_id), and a batch granted again inserts nothing."""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from app.coupons import repository
from app.flows.job_runs import JobRunner
from app.jobs import repository as jobs
from app.jobs.models import JobKind, JobStatus
from app.metrics import coupons_granted
from app.store.order_ids import new_claim_id

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
# Background runs started by the API, kept referenced until they finish.
_running: set["asyncio.Task[bool]"] = set()


@dataclass
class GrantRunner(JobRunner):
    kind: ClassVar[JobKind] = JobKind.COUPON_GRANT

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
