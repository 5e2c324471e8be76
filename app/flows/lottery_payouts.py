"""Running lottery payouts (app/lottery/service.py start_payout creates them): a runner
takes the job's lease, then works in steps: each step pays the next batch of the
lottery's pending wins and records the progress in one transaction (app/lottery/
payouts.py pays each win once). A runner that dies leaves the lease to run out; the
worker's job loop continues from the recorded progress, and a win paid before is not
pending any more, so it is never paid again."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs import repository as jobs
from app.jobs.models import JobKind, JobStatus
from app.lottery.payouts import pay_next
from app.outages import describe

logger = logging.getLogger(__name__)


@dataclass
class PayoutRunner:
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings

    async def run(self, job_id: int) -> bool:
        """Run (or resume) the payout if nobody else holds it; True if this call took it."""
        lease = self.settings.job_lease_seconds
        async with self.sessionmaker() as session, session.begin():
            job = await jobs.take_lease(session, job_id=job_id, seconds=lease)
            if job is None:
                return False
            lottery_id, done, total = int(job.payload["lottery_id"]), job.done, job.total
        try:
            while done < total:
                async with self.sessionmaker() as session, session.begin():
                    limit = min(self.settings.lottery_payout_batch_size, total - done)
                    paid = await pay_next(session, lottery_id=lottery_id, limit=limit)
                    if paid == 0:
                        break  # the rest was paid by another runner, or by an earlier job
                    done += paid
                    await jobs.advance(session, job_id=job_id, done=done, seconds=lease)
            async with self.sessionmaker() as session, session.begin():
                await jobs.finish(session, job_id=job_id, status=JobStatus.DONE)
        except asyncio.CancelledError:
            async with self.sessionmaker() as session, session.begin():
                await jobs.release_lease(session, job_id=job_id)
            raise
        except Exception as exc:
            # The lease runs out and the job loop tries again: a payout retried pays only
            # what is still pending.
            logger.warning("payout job %s interrupted (%s); retried later", job_id, describe(exc))
            return True
        logger.info("payout job %s done: %d wins of lottery %d paid", job_id, done, lottery_id)
        return True

    async def resume_orphans(self) -> int:
        async with self.sessionmaker() as session:
            orphans = await jobs.orphaned_jobs(session, kind=JobKind.LOTTERY_PAYOUT.value, limit=10)
        ran = 0
        for job_id in orphans:
            ran += await self.run(job_id)
        return ran

    async def loop(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """The worker's: run every payout job nobody holds (new, or its runner died)."""
        failing = False
        while not stop.is_set():
            try:
                await self.resume_orphans()
                failing = False
            except Exception as exc:  # Postgres away: the next pass retries; said once
                if not failing:
                    logger.warning("payout loop failed (%s); retrying", describe(exc))
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
