"""Draws, run by `seckill worker`: every draw-mode event whose registration has closed
and that is not drawn yet is drawn (app/access/draw_service.py), each in its own
transaction with its draw row locked. Drawing is idempotent (a drawn event is left as it
is), so several workers, or a worker and the first read after the close (which draws
too), never draw one event twice.

Each pass lists up to `draw_batch_size` due events and draws them; a full batch means more
may be due, so the next pass starts at once, otherwise it waits `draw_check_seconds`.
"""

import asyncio
import contextlib
import logging

from app.access import draw_service
from app.container import Container
from app.moments import utc_now

logger = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.1


class DrawRunner:
    def __init__(self, *, services: Container) -> None:
        self.services = services
        self.settings = services.settings
        self.drawn = 0

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("draws started (every %.1f s)", self.settings.draw_check_seconds)
        retry_in = FIRST_RETRY_SECONDS
        while not stop.is_set():
            try:
                due = await self.due()
                for event_id in due:
                    await self.draw(event_id)
            except Exception as exc:
                # Postgres unreachable: nothing is lost, the next pass draws what is due.
                if retry_in == FIRST_RETRY_SECONDS:  # one line per outage, not per retry
                    logger.warning("draws failed (%s); retrying with backoff", exc)
                await self.pause(stop, retry_in)
                retry_in = min(retry_in * 2, self.settings.worker_backoff_max_seconds)
                continue
            retry_in = FIRST_RETRY_SECONDS
            if len(due) < self.settings.draw_batch_size:
                await self.pause(stop, self.settings.draw_check_seconds)
        logger.info("draws stopped after drawing %d event(s)", self.drawn)

    async def draw_once(self) -> int:
        """One pass: every due event drawn; how many this pass drew (tests)."""
        drawn = 0
        for event_id in await self.due():
            drawn += await self.draw(event_id)
        return drawn

    async def due(self) -> list[int]:
        async with self.services.sessionmaker() as session, session.begin():
            return await draw_service.due_events(
                session=session, now=utc_now(), limit=self.settings.draw_batch_size
            )

    async def draw(self, event_id: int) -> bool:
        async with self.services.sessionmaker() as session, session.begin():
            drawn = await draw_service.draw_due(session=session, event_id=event_id, now=utc_now())
        if drawn:
            logger.info("drew event %d", event_id)
            self.drawn += 1
        return drawn

    @staticmethod
    async def pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
