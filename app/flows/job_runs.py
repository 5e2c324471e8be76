"""What every background job's runner shares (bulk grants, lottery payouts): the worker's
loop that runs the jobs of its kind nobody holds (new, or whose runner died and whose
lease ran out). Each runner's `run` takes the lease and does the work in steps."""

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs import repository as jobs
from app.jobs.models import JobKind
from app.outages import describe

logger = logging.getLogger(__name__)


@dataclass
class JobRunner(ABC):
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    kind: ClassVar[JobKind]

    @abstractmethod
    async def run(self, job_id: int) -> bool:
        """Run (or resume) the job if nobody else holds it; True if this call took it."""

    async def resume_orphans(self) -> int:
        """Run every job of this kind nobody holds; how many this call ran."""
        async with self.sessionmaker() as session:
            orphans = await jobs.orphaned_jobs(session, kind=self.kind.value, limit=10)
        ran = 0
        for job_id in orphans:
            ran += await self.run(job_id)
        return ran

    async def loop(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """The worker's: resume_orphans until `stop`, every `interval` seconds."""
        failing = False
        while not stop.is_set():
            try:
                await self.resume_orphans()
                if failing:
                    logger.info("%s jobs: working again", self.kind.value)
                failing = False
            except Exception as exc:  # Postgres away: the next pass retries; said once
                if not failing:
                    logger.warning(
                        "%s jobs: loop failed (%s); retrying", self.kind.value, describe(exc)
                    )
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
