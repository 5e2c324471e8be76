"""Running lottery payouts (app/lottery/service.py start_payout creates them): a runner
takes the job's lease, then works in steps: each step pays the next batch of the
lottery's pending wins and records the progress in one transaction (app/lottery/
payouts.py pays each win once). A runner that dies leaves the lease to run out; the
worker's job loop continues from the recorded progress, and a win paid before is not
pending any more, so it is never paid again."""

import asyncio
import logging
from dataclasses import dataclass
from typing import ClassVar

from app.flows.job_runs import JobRunner
from app.jobs import repository as jobs
from app.jobs.models import JobKind, JobStatus
from app.lottery.payouts import pay_next
from app.outages import describe

logger = logging.getLogger(__name__)


@dataclass
class PayoutRunner(JobRunner):
    kind: ClassVar[JobKind] = JobKind.LOTTERY_PAYOUT

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
